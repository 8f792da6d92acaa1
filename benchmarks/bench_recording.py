"""Cost of recording training dynamics: plain training vs. each recording mode, measured in one run.

    python benchmarks/bench_recording.py --max_train 10000 --epochs 3 --threads 2

Fashion-MNIST's first 10,000 training images (the README's documented subset), the small CNN, batch 128, the
validation pass on 2,000 test images; the modes are interleaved epoch by epoch so machine noise hits each alike.
An "epoch" is what the paper's loop does per epoch: training pass + validation pass (+ the recording work).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.inference import inference_copy  # noqa: E402
from core.passes import predict_probs, train_epoch  # noqa: E402
from labeltrace.epoch_file import EpochFile  # noqa: E402
from core.seed import epoch_generator, seed_everything  # noqa: E402
from datasets.registry import load_dataset  # noqa: E402
from models.registry import build_model  # noqa: E402
from pipeline.loaders import make_feed  # noqa: E402

MODES = ("none", "train", "eval")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--max_train", type=int, default=10000)
    p.add_argument("--max_test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per mode")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--depth", type=int, default=3, help="conv blocks of the small CNN")
    p.add_argument("--record_batch", type=int, default=64, help="as pipeline/loaders.py eval_batch_size on the CPU")
    p.add_argument("--loader", default="fast")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    bundle = load_dataset(a.dataset, None).subset(a.max_train, a.max_test)
    device = torch.device("cpu")
    labels = torch.as_tensor(bundle.train.targets)
    feeds = {"train": make_feed(bundle.train, bundle, train=True, shuffle=True, batch_size=128, loader=a.loader,
                                device=device),
             "valid": make_feed(bundle.test, bundle, train=False, shuffle=False, batch_size=a.record_batch, loader=a.loader,
                                device=device),
             "record": make_feed(bundle.train, bundle, train=True, shuffle=False, batch_size=a.record_batch,
                                 loader=a.loader, device=device)}
    seed_everything(0)
    model = build_model("cnn", a.depth, num_classes=10, in_channels=1, image_size=bundle.image_size)
    model = model.to(memory_format=torch.channels_last)  # as pipeline/generate.py does on the fast path
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    recorder = EpochFile(Path("/tmp/bench_td_raw.npy"), len(bundle.train), a.epochs * len(MODES) + 1, 10,
                             resume=False)
    times: dict[str, list[float]] = {m: [] for m in MODES}
    epoch = 0
    train_epoch(model, feeds["train"], labels, opt, gen=epoch_generator(0, 99), progress=False)  # warm-up
    for rep in range(a.epochs):
        for mode in MODES:
            t0 = time.perf_counter()
            hook = ((lambda idx, lg, e=epoch: recorder.record(e, idx.numpy(), lg.softmax(1).numpy()))
                    if mode == "train" else None)
            train_epoch(model, feeds["train"], labels, opt, gen=epoch_generator(0, epoch), progress=False,
                        on_logits=hook)
            fast = inference_copy(model)  # as core/fit.py does for every eval pass
            predict_probs(fast, feeds["valid"], gen=epoch_generator(0, epoch), progress=False)
            if mode == "eval":
                probs = predict_probs(fast, feeds["record"], gen=epoch_generator(0, -epoch), progress=False)
                recorder.record(epoch, np.arange(len(probs)), probs)
            recorder.flush()
            times[mode].append(time.perf_counter() - t0)
            epoch += 1
    base = float(np.median(times["none"]))
    result = {"dataset": a.dataset, "train_samples": len(bundle.train), "threads": a.threads, "loader": a.loader,
              "epoch_seconds": {m: float(np.median(t)) for m, t in times.items()},
              "ratio_vs_plain": {m: float(np.median(t)) / base for m, t in times.items()}}
    print(json.dumps(result, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
