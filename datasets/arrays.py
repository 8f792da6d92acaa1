"""In-memory arrays as a per-sample ``Dataset`` (the standard DataLoader path, as torchvision's CIFAR does it)."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from datasets.base import ArraySplit, DatasetBundle


class ArrayImages(Dataset):
    """``(normalised float tensor (C, H, W), index)`` per sample, augmented with PIL transforms when ``train``."""

    def __init__(self, split: ArraySplit, bundle: DatasetBundle, train: bool) -> None:
        from torchvision import transforms as T

        aug, steps = bundle.augment, []
        if train and aug.pad:
            steps.append(T.RandomCrop(bundle.image_size, padding=aug.pad))
        if train and aug.flip:
            steps.append(T.RandomHorizontalFlip())
        steps += [T.ToTensor(), T.Normalize(bundle.mean, bundle.std)]
        self.split, self.transform = split, T.Compose(steps)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        image = self.split.images[i]  # (C, H, W) uint8
        pil = Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))
        return self.transform(pil), i
