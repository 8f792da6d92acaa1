"""A small CNN that trains in seconds per epoch on a laptop CPU (digits, Fashion-MNIST)."""
from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """``depth`` conv blocks (conv 3x3, BN, ReLU) of widths 32, 64, 128, ...; a 2x2 max-pool after every
    block but the first while the feature map is at least 4 pixels wide; global average pooling; a linear head.

    Input (B, in_channels, H, W) -> logits (B, num_classes).
    """

    def __init__(self, depth: int, num_classes: int, in_channels: int = 1, image_size: int = 28) -> None:
        super().__init__()
        if not 1 <= depth <= 8:
            raise ValueError(f"cnn depth must be 1..8 conv blocks, got {depth}")
        blocks, width, size, in_ch = [], 32, image_size, in_channels
        for i in range(depth):
            blocks += [nn.Conv2d(in_ch, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if i > 0 and size >= 4:
                blocks.append(nn.MaxPool2d(2))
                size //= 2
            in_ch, width = width, width * 2
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))
