"""Time estimates for the runs of the paper scripts (``--dry_run``), from the speeds measured in this project.

Every figure the estimates rest on is in :data:`STEP_SECONDS` and the constants below, with where it comes
from. A training epoch costs ``n_train x step + n_eval x step x EVAL_FRACTION``: a training step (forward,
backward, update) per training image, and a forward pass per validation image and, with ``--record eval``, per
recorded training image. STEP 2 trains on the CPU whatever the device.
"""
from __future__ import annotations

DEVICES = ("gpu", "cpu")
DEVICE_NAMES = {"gpu": "one NVIDIA H200 (README, Performance)", "cpu": "the project's shared 2-core CPU, 1 thread"}

# Seconds of one training step per image, per (network, input size); None = not measured on that device.
# GPU, ResNet-32 at 32 px: the README's Performance section (a lent NVIDIA H200, runner.py, CIFAR-sized data
# 50,000 train / 10,000 valid, batch 128, CUDA-graph step): 1.75 s an epoch without recording, the eval-mode
# recording pass +0.28 s per 50,000 images, so a forward 5.6 us and a step (1.75 s - 10,000 x 5.6 us) / 50,000.
# GPU, torchvision ResNet-34/50 at 224 px: not measured; that step scaled by multiply-accumulates per image
# (ResNet-32 at 32 px 0.069 G, ResNet-34 3.6 G, ResNet-50 4.1 G at 224 px). An upper bound: the ResNet-32 step
# is launch-bound, a 224-px ResNet uses the GPU better (JPEG decoding on the CPU may bound it instead).
# CPU: measured on the project's 2-core CPU, 1 torch thread, shared with other jobs: ResNets
# on random tensors (channels-last, batch 128 at 32 px, 8 at 224 px; their ratio, 71x for ResNet-50, is near
# the 59x of the multiply-accumulates, which is why the GPU figures scale by them); the small CNNs from the
# proxy runs of docs/paper_proxy.md (training seconds per image-epoch in their summary.json, typical of the
# 0.17-0.21 ms digits / 0.6-1.7 ms Fashion-MNIST spread under the load of the time).
_GPU_RESNET32 = (1.75 - 10_000 * 5.6e-6) / 50_000
STEP_SECONDS: dict[str, dict[str, float | None]] = {
    "resnet32_32px": {"gpu": _GPU_RESNET32, "cpu": 3.01e-3},
    # Tiny ImageNet: ResNet-32 with an initial stride of 2 at 64 px: after the stride the feature maps are
    # CIFAR's, so the same step (the first convolution's 4x larger input adds ~1% of the multiply-accumulates).
    "resnet32_64px": {"gpu": _GPU_RESNET32, "cpu": 3.01e-3},
    "resnet34_224px": {"gpu": _GPU_RESNET32 * 3.6 / 0.069, "cpu": 112e-3},
    "resnet50_224px": {"gpu": _GPU_RESNET32 * 4.1 / 0.069, "cpu": 214e-3},
    "cnn3_8px": {"gpu": None, "cpu": 0.18e-3},  # digits, the small CNN
    "resnet8_8px": {"gpu": None, "cpu": 0.13e-3},  # digits, ResNet-8
    "cnn2_28px": {"gpu": None, "cpu": 1.0e-3},  # Fashion-MNIST (3,000), the small CNN with 2 blocks
    # The shapes (16 px, 2,000 images), runner.py 3 epochs: train seconds per image.
    "resnet8_16px": {"gpu": None, "cpu": 0.19e-3},
    "cnn3_16px": {"gpu": None, "cpu": 0.32e-3},
    "cnn2_16px": {"gpu": None, "cpu": 0.26e-3},
}
# A forward pass per image as a fraction of a training step. GPU: 5.6 us / 33.9 us (above). CPU: the README's
# recording benchmark (Fashion-MNIST 10,000, cnn 3, 1 thread): the eval recording pass 6.8 s per 10,000 images
# against a 2.53 ms step.
EVAL_FRACTION = {"gpu": 5.6e-6 / _GPU_RESNET32, "cpu": 0.68e-3 / 2.53e-3}
# STEP 2, the LSTM detector (pooled, batch 64, AdamW, validation each epoch), on the CPU, 1 thread: seconds per
# trace-epoch = a + b x T, fitted to two measurements (detector_models.train.train_detector on
# 2,000 random traces, 2 epochs: T=40 1.8 s, T=200 3.6 s).
DETECTOR_TRACE_SECONDS = 333e-6
DETECTOR_STEP_SECONDS = 2.78e-6
# A ResNet-32 epoch under bf16 autocast against float32 on this CPU (AVX512-BF16), runner.py, 2 threads:
# 1.57-1.64x (benchmarks/precision_speed.py, README Performance). Said beside the CPU estimates, not applied.
CPU_BF16_SPEEDUP = 1.6
STARTUP_SECONDS = 5.0  # a process: Python, torch, the dataset loaded and checked (measured ~3-5 s here)


def current_device() -> str:
    """``gpu`` when this machine has CUDA (the runs would use it), else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def training_seconds(device: str, family: str, *, n_train: int, n_eval: int, epochs: int) -> float | None:
    """Seconds of ``epochs`` epochs training on ``n_train`` images with ``n_eval`` forward-only images per
    epoch (validation + recorded images), on ``device`` (``gpu``/``cpu``); None where the network's speed is
    not known there."""
    step = STEP_SECONDS[family][device]
    if step is None:
        return None
    return STARTUP_SECONDS + epochs * step * (n_train + n_eval * EVAL_FRACTION[device])


def detector_seconds(*, traces: int, length: int, epochs: int) -> float:
    """Seconds of STEP 2 on ``traces`` traces of ``length`` epochs for ``epochs`` detector epochs (CPU)."""
    return STARTUP_SECONDS + traces * epochs * (DETECTOR_TRACE_SECONDS + length * DETECTOR_STEP_SECONDS)


def format_seconds(seconds: float | None) -> str:
    """``"42 s"``, ``"7.5 min"``, ``"3.2 h"``, ``"4.1 d"``; ``"-"`` for unknown."""
    if seconds is None:
        return "-"
    for unit, size, at in (("d", 86_400, 86_400), ("h", 3_600, 3_600), ("min", 60, 120)):
        if seconds >= at:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
