"""Classifiers by ``net_type`` and ``depth``."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from labeltrace.errors import fail
from labeltrace.io import load_torch
from models.cifar_resnet import CifarResNet
from models.small import SmallCNN

TORCHVISION_DEPTHS = (18, 34, 50)


def _cifar_resnet(depth: int, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    if depth < 8 or (depth - 2) % 6:
        fail(f"--depth: the CIFAR ResNet needs depth 6n+2 (20, 32, 44, 56, 110), got {depth}")
    return CifarResNet(depth, num_classes, in_channels, initial_stride=2 if image_size >= 64 else 1)


def _torchvision_resnet(depth: int, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    import torchvision

    if depth not in TORCHVISION_DEPTHS:
        fail(f"--depth: torchvision ResNet depth must be one of {TORCHVISION_DEPTHS}, got {depth}")
    model = getattr(torchvision.models, f"resnet{depth}")(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return model


def _resnet(depth: int, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """The paper's ``resnet``: the CIFAR family below 128 px, torchvision's ResNet-18/34/50 above."""
    if image_size >= 128:
        return _torchvision_resnet(depth, num_classes, in_channels, image_size)
    return _cifar_resnet(depth, num_classes, in_channels, image_size)


def _cnn(depth: int, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    if not 1 <= depth <= 8:
        fail(f"--depth: cnn takes 1..8 conv blocks, got {depth}")
    return SmallCNN(depth, num_classes, in_channels, image_size)


MODELS: dict[str, Callable[[int, int, int, int], nn.Module]] = {
    "resnet": _resnet,
    "cifar_resnet": _cifar_resnet,
    "torchvision_resnet": _torchvision_resnet,
    "cnn": _cnn,
}


def build_model(net_type: str, depth: int, *, num_classes: int, in_channels: int, image_size: int,
                pretrained: str | None = None, log: Callable[[str], None] = print) -> nn.Module:
    """A freshly initialised classifier; ``pretrained`` is a local state_dict file (the head is skipped, and
    ``log`` says so, when its shape differs, as when fine-tuning ImageNet weights on 200 classes)."""
    if net_type not in MODELS:
        fail(f"--net_type: unknown network {net_type!r}; valid: {', '.join(sorted(MODELS))}")
    model = MODELS[net_type](depth, num_classes, in_channels, image_size)
    if pretrained:
        load_pretrained(model, Path(pretrained), log=log)
    return model


def head_keys(model: nn.Module) -> set[str]:
    """The state_dict keys of the classifier head: the last ``nn.Linear`` of the network."""
    last = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)][-1:]
    return {f"{name}.{p}" for name in last for p in ("weight", "bias")}


def without_head(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A classifier's state_dict less its head (the module of the last two-dimensional weight): a backbone
    for ``--pretrained`` when the new task's classes mean something else, so its head starts afresh."""
    head = [k for k, v in state.items() if k.endswith(".weight") and v.dim() == 2][-1].removesuffix("weight")
    return {k: v for k, v in state.items() if not k.startswith(head)}


def load_pretrained(model: nn.Module, path: Path, *, log: Callable[[str], None] = print) -> None:
    """Load every tensor of ``path`` into ``model``; only the classifier head may be missing or of another
    shape (another number of classes). Anything else that does not fit is an error: a network trained from a
    few loaded tensors would pass for a pretrained one."""
    state = load_torch(path, what="state_dict file (--pretrained)")
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        fail(f"--pretrained: {path} is not a state_dict (a dict of tensors)")
    own, head = model.state_dict(), head_keys(model)
    fits = {k for k, v in state.items() if k in own and own[k].shape == v.shape}
    misfits = sorted(set(own) - fits - head)
    if misfits:
        fail(f"--pretrained: {path} fits {len(fits)} of the {len(own)} tensors of this network; "
             f"{len(misfits)} others are missing or of another shape ({', '.join(misfits[:3])}, ...)")
    model.load_state_dict({k: state[k] for k in fits}, strict=False)
    skipped = sorted(head - fits)
    if skipped:
        log(f"--pretrained: loaded {len(fits)} of {len(own)} tensors from {path}; the classifier head "
            f"({', '.join(skipped)}) does not fit and starts afresh")
