"""Datasets stored as ImageFolder trees: ``train/<class>/<image>`` and ``val/<class>/<image>`` (or ``test/``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from labeltrace.errors import fail
from datasets.base import Augment, DatasetBundle, FolderSplit

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def scan_split(folder: Path, classes: list[str] | None = None) -> tuple[FolderSplit, list[str]]:
    """List ``folder/<class>/<image>`` in sorted order; the classes of ``train`` fix the label ids."""
    found = sorted(d.name for d in folder.iterdir() if d.is_dir())
    training = classes is None  # the training split defines the classes
    classes = classes or found
    unknown = set(found) - set(classes)
    if unknown:
        fail(f"{folder}: classes not in train/: {', '.join(sorted(unknown)[:5])}")
    index = {c: i for i, c in enumerate(classes)}
    paths, targets = [], []
    for name in found:
        images = [str(p) for p in sorted((folder / name).rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS]
        if not images and training:  # a class without samples would still be a target of noisy labels
            fail(f"{folder / name}: a class folder without images ({', '.join(IMAGE_EXTENSIONS[:3])}, ...): "
                 "add images or remove the folder")
        paths += images
        targets += [index[name]] * len(images)
    if not paths:
        fail(f"{folder}: no images found in <class>/<image> sub-folders")
    return FolderSplit(paths, np.asarray(targets, dtype=np.int64)), classes


NATIVE_MAX = 64  # images at most this size train at their own size (CIFAR-style), larger ones at the default
_SIZE_SAMPLE = 256  # images whose headers are read to find the common size


def native_size(paths: list[str]) -> int | None:
    """The most common longer side among the first images of ``paths`` (PIL reads only their headers), or None
    when none can be read."""
    from PIL import Image

    sides = []
    for path in paths[:_SIZE_SAMPLE]:
        try:
            with Image.open(path) as image:
                sides.append(max(image.size))
        except OSError:
            continue  # a damaged file is reported when it is decoded for training
    if not sides:
        return None
    values, counts = np.unique(sides, return_counts=True)
    return int(values[np.argmax(counts)])


def choose_size(paths: list[str], image_size: int | None, default: int) -> tuple[int, str]:
    """The training resolution and why: ``--image_size`` when given, the images' own size when it is at most
    64 px (upscaling 28 px images to 224 px costs ~60x the memory and time for nothing), else ``default``."""
    if image_size is not None:
        return image_size, f"--image_size {image_size}"
    native = native_size(paths)
    if native is not None and native <= NATIVE_MAX:
        return native, f"the images' own size ({native} px, the most common; at most {NATIVE_MAX} px trains as is)"
    return default, (f"the default {default} px (the images are {native} px, above {NATIVE_MAX}; "
                     "--image_size sets another)" if native else f"the default {default} px")


def load_image_folder(root: Path, name: str, image_size: int | None, default_size: int = 224) -> DatasetBundle:
    """``root`` holds ``train/`` and ``val/`` (or ``test/``), each with one sub-folder per class."""
    train_dir = root / "train"
    test_dir = next((root / s for s in ("val", "test") if (root / s).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        fail(f"{name}: expected {train_dir}/<class>/<image> and {root / 'val'}/<class>/<image>")
    train, classes = scan_split(train_dir)
    if len(classes) < 2:  # no noise can be drawn, and a one-class network learns nothing
        fail(f"{train_dir}: one class folder ({classes[0]}): a classifier needs 2 or more")
    test, _ = scan_split(test_dir, classes)
    return folder_bundle(root, name, train, test, classes, image_size, default_size)


def folder_bundle(root: Path, name: str, train: FolderSplit, test: FolderSplit, classes: list[str],
                  image_size: int | None, default_size: int) -> DatasetBundle:
    """The bundle of image files already listed (``train``, ``test``) with their training resolution."""
    image_size, why = choose_size(train.paths, image_size, default_size)
    small = image_size <= 64
    return DatasetBundle(name=name, train=train, test=test, num_classes=len(classes), in_channels=3,
                         image_size=image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                         augment=Augment(pad=image_size // 8 if small else 0, flip=True), classes=classes,
                         info={"path": str(root), "image_size_choice": f"{image_size} px: {why}"})


def to_rgb(img):
    """A PIL image as 8-bit RGB. 16-bit and 32-bit grey images (``I;16``, ``I``) are scaled to 0..255 first:
    ``convert("RGB")`` clips them, and a 16-bit PNG becomes pure white."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(values.max()), 1.0)
        img = Image.fromarray(np.clip(values * 255.0 / top, 0, 255).round().astype(np.uint8), mode="L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img) * 255.0, 0, 255).round().astype(np.uint8), mode="L")
    return img.convert("RGB")


class FolderImages(Dataset):
    """Images from files, returned as ``(float tensor (3, S, S), index)``; decoding and augmentation per sample."""

    def __init__(self, split: FolderSplit, bundle: DatasetBundle, train: bool) -> None:
        from torchvision import transforms as T

        size, aug = bundle.image_size, bundle.augment
        steps = []
        if size <= 64:  # small images: resize to size, then pad-and-crop like CIFAR
            steps.append(T.Resize((size, size)))
            if train and aug.pad:
                steps.append(T.RandomCrop(size, padding=aug.pad))
        elif train:
            steps.append(T.RandomResizedCrop(size))
        else:
            steps += [T.Resize(int(size * 256 / 224)), T.CenterCrop(size)]
        if train and aug.flip:
            steps.append(T.RandomHorizontalFlip())
        steps += [T.ToTensor(), T.Normalize(bundle.mean, bundle.std)]
        self.split, self.transform = split, T.Compose(steps)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path = self.split.paths[i]
        try:
            with Image.open(path) as img:
                return self.transform(to_rgb(img)), i
        except (OSError, SyntaxError, ValueError) as exc:  # PIL's ways of saying the file is not an image
            fail(f"{path}: unreadable image ({type(exc).__name__}: {exc}): replace it with a readable one and "
                 "re-run the same command to resume")
