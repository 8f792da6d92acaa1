"""``shapes``: a third offline dataset, drawn by code: 16x16 grey images of 10 shape classes.

Made for the detector's pool of training runs (``benchmarks/pool.py``), so that a detector judged on digits or
Fashion-MNIST has trained on more than one other dataset. Each image is one shape (disc, ring, square, square
outline, horizontal bar, vertical bar, plus, cross, triangle, two dots) at a random position, size, stroke width,
small rotation and contrast, under Gaussian pixel noise and, in some images, a stray stroke; neighbouring classes
(disc / ring, square / outline, plus / cross) blur into each other at high noise, so a network learns it well
but not perfectly. Deterministic: the same seed gives the same images on every machine.
"""
from __future__ import annotations

import numpy as np

from datasets.base import ArraySplit, Augment, DatasetBundle, channel_stats

SHAPES_CLASSES = ["disc", "ring", "square", "outline", "hbar", "vbar", "plus", "cross", "triangle", "dots"]
SIZE = 16
NUM_TRAIN, NUM_TEST = 4000, 1000
SEED = 20231


def _mask(kind: int, u: np.ndarray, v: np.ndarray, scale: float, width: float) -> np.ndarray:
    """Coverage, 0 or 1, of shape ``kind`` over the shape's own coordinates ``u, v`` (SIZE, SIZE)."""
    r = np.sqrt(u * u + v * v)  # IEEE-exact, unlike a vectorised hypot: the same images on every machine
    box = np.maximum(np.abs(u), np.abs(v))
    shapes = {
        0: r < scale,
        1: np.abs(r - scale) < width / 2,
        2: box < scale * 0.85,
        3: np.abs(box - scale * 0.85) < width / 2,
        4: (np.abs(v) < width) & (np.abs(u) < scale),
        5: (np.abs(u) < width) & (np.abs(v) < scale),
        6: ((np.abs(v) < width / 2) | (np.abs(u) < width / 2)) & (box < scale),
        7: ((np.abs(u - v) < width * 0.7) | (np.abs(u + v) < width * 0.7)) & (box < scale * 0.8),
        8: (v < scale * 0.6) & (v > -scale + 2 * np.abs(u) * 1.1),
        9: np.minimum((u - scale * 0.6) ** 2, (u + scale * 0.6) ** 2) + v * v < (width * 1.2) ** 2,
    }
    return shapes[kind].astype(np.float64)


def draw_shapes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images, uint8 of shape (n, 1, SIZE, SIZE), and their classes, int64 (n,), balanced in turn."""
    grid = np.linspace(-1, 1, SIZE)  # float64 throughout: no platform-dependent float32 kernels
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    labels = np.arange(n) % len(SHAPES_CLASSES)
    rng.shuffle(labels)
    images = np.empty((n, 1, SIZE, SIZE), np.uint8)
    for i, kind in enumerate(labels):
        cx, cy = rng.uniform(-0.3, 0.3, 2)
        angle = rng.uniform(-0.3, 0.3)
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        image = _mask(kind, u, v, rng.uniform(0.35, 0.75), rng.uniform(0.12, 0.3)) * rng.uniform(0.45, 1.0)
        if rng.random() < 0.3:  # a stray stroke across the image
            a, b = rng.uniform(-1, 1, 2)
            image = np.maximum(image, (np.abs(yy - a * xx - b) < 0.08) * rng.uniform(0.3, 0.7))
        image = image + rng.normal(0, rng.uniform(0.05, 0.35), image.shape)
        images[i, 0] = np.clip(image * 255, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def load_shapes_bundle() -> DatasetBundle:
    """4,000 training and 1,000 test images, always the same ones (seeded)."""
    images, targets = draw_shapes(NUM_TRAIN + NUM_TEST, np.random.default_rng(SEED))
    mean, std = channel_stats(images[:NUM_TRAIN])
    return DatasetBundle(name="shapes", train=ArraySplit(images[:NUM_TRAIN], targets[:NUM_TRAIN]),
                         test=ArraySplit(images[NUM_TRAIN:], targets[NUM_TRAIN:]), num_classes=len(SHAPES_CLASSES),
                         in_channels=1, image_size=SIZE, mean=mean, std=std, augment=Augment(),
                         classes=SHAPES_CLASSES, info={"path": "generated"})
