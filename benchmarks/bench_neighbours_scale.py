"""The neighbour agreement at ImageNet scale on the CPU: seconds per epoch and peak memory of the recorder's
feature store plus its search, on generated clustered features with noisy labels; and, at N = 100k, the
approximate search against the exact one.

    python benchmarks/bench_neighbours_scale.py            # ~25 min on 2 cores; benchmarks/results/bench_neighbours_scale.json
    python benchmarks/bench_neighbours_scale.py --quick    # N = 200k and 20k instead: a check that it runs

Features: 1,000 classes (ImageNet's), each a centre in D dimensions plus a spread along 64 directions shared by
all classes and a little isotropic noise, the shape of a trained network's penultimate features; 20% of the
labels flipped uniformly. A sample's 20 exact nearest neighbours share its label 64% of the time (as a k-NN
classifier on ImageNet features is right about 70% of the time). They are generated batch by batch (1,024 rows), never held whole, and passed to a
:class:`labeltrace.neighbours.FeatureStore` as a recorder does; each size runs in a process of its own, so its
peak RSS growth (over the process after imports and set-up) is the store's and the search's alone.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labeltrace.io import write_json  # noqa: E402
from labeltrace.neighbours import DEFAULT_K, FeatureStore, agreement  # noqa: E402

CLASSES, SPREAD_RANK, BATCH, NOISE = 1000, 64, 1024, 0.2


class Clusters:
    """Deterministic generated features: :meth:`batch` gives rows [start, stop) the same every time."""

    def __init__(self, n: int, d: int, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.n, self.d, self.seed = n, d, seed
        self.centres = torch.randn(CLASSES, d, generator=gen)
        self.spread = torch.randn(SPREAD_RANK, d, generator=gen) / SPREAD_RANK ** 0.5
        rng = np.random.default_rng(seed)
        self.true = rng.integers(0, CLASSES, n)
        flip = rng.random(n) < NOISE
        self.labels = np.where(flip, rng.integers(0, CLASSES, n), self.true)
        self.flipped = self.labels != self.true

    def batch(self, start: int, stop: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(self.seed * 1_000_003 + start))
        b = stop - start
        return (self.centres[torch.from_numpy(self.true[start:stop])]
                + torch.randn(b, SPREAD_RANK, generator=gen) @ self.spread
                + 0.3 * torch.randn(b, self.d, generator=gen))


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # Linux: KiB


def one_epoch(n: int, d: int, search: str) -> dict:
    """One epoch through a FeatureStore (batches in a shuffled order, as a training pass gives them) and its
    agreement: seconds of each part and the peak RSS growth."""
    data = Clusters(n, d)
    order = np.random.default_rng(1).permutation(n // BATCH + 1)
    store = FeatureStore(n)
    base = rss_gib()
    add_seconds = 0.0
    for b in order:
        start, stop = b * BATCH, min((b + 1) * BATCH, n)
        if start >= stop:
            continue
        feats = data.batch(start, stop)
        t = time.perf_counter()
        store.add(torch.arange(start, stop), feats)
        add_seconds += time.perf_counter() - t
    described = store.describe(k=DEFAULT_K, search=search)
    t = time.perf_counter()
    found = store.agreement(data.labels, k=DEFAULT_K, search=search)
    search_seconds = time.perf_counter() - t
    from sklearn.metrics import roc_auc_score

    return {"n": n, "d": d, **described, "add_seconds": add_seconds, "search_seconds": search_seconds,
            "epoch_seconds": add_seconds + search_seconds, "peak_rss_growth_gib": rss_gib() - base,
            "roc_auc_of_agreement": float(roc_auc_score(data.flipped, -found))}


def compare(n: int, d: int) -> dict:
    """At N = ``n``: the auto search (ivf beyond the exact budget) against the exact one on the same stored
    rows (recall@20 and mean |agreement difference|), and both against the exact search of the raw float32
    features; the same for rows reduced to 128 dimensions."""
    import faiss

    data = Clusters(n, d)
    raw = torch.cat([data.batch(s, min(s + BATCH, n)) for s in range(0, n, BATCH)])
    exact_raw = agreement(raw, data.labels, search="exact")
    out = {"n": n, "d": d}
    for name, budget in (("whole", 1 << 40), ("reduced to 128", n * 128 * 2)):
        store = FeatureStore(n, budget=budget)
        store.add(torch.arange(n), raw)
        x = torch.nn.functional.normalize(store.rows.float(), dim=1)
        t = time.perf_counter()
        ivf = agreement(x, data.labels, search="ivf")
        ivf_seconds = time.perf_counter() - t
        t = time.perf_counter()
        exact = agreement(x, data.labels, search="exact")
        exact_seconds = time.perf_counter() - t
        out[name] = {"dim": x.shape[1], "recall_at_20": recall(x, DEFAULT_K, faiss),
                     "mean_abs_ivf_vs_exact": float(np.abs(ivf - exact).mean()),
                     "mean_abs_ivf_vs_exact_raw": float(np.abs(ivf - exact_raw).mean()),
                     "ivf_seconds": ivf_seconds, "exact_seconds": exact_seconds}
    return out


def recall(x: torch.Tensor, k: int, faiss, queries: int = 2000) -> float:
    """Of the k exact nearest neighbours of ``queries`` evenly spread rows, the fraction the ivf index finds."""
    from labeltrace.neighbours import ivf_params

    xs = np.ascontiguousarray(x.numpy())
    n, d = xs.shape
    lists, probed = ivf_params(n)
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, lists, faiss.ScalarQuantizer.QT_fp16,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.seed, index.cp.niter, index.cp.max_points_per_centroid = 0, 10, 64
    index.train(xs[:: max(1, n // (lists * 64))])
    index.add(xs)
    index.nprobe = probed
    rows = np.linspace(0, n - 1, queries).astype(np.int64)
    approx = index.search(xs[rows], k + 1)[1]
    sim = x[rows] @ x.T
    sim[torch.arange(len(rows)), torch.from_numpy(rows)] = -torch.inf
    truth = sim.topk(k, dim=1).indices.numpy()
    return float(np.mean([len(set(t) & set(a) - {r}) / k for t, a, r in zip(truth, approx, rows)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--one", nargs=3, metavar=("N", "D", "SEARCH"), help=argparse.SUPPRESS)  # a child process
    p.add_argument("--compare", nargs=2, type=int, metavar=("N", "D"), help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_neighbours_scale.json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.one:
        print(json.dumps(one_epoch(int(a.one[0]), int(a.one[1]), a.one[2])))
        return
    if a.compare:
        print(json.dumps(compare(*a.compare)))
        return
    big, small = (200_000, 20_000) if a.quick else (1_280_000, 100_000)
    child = [sys.executable, __file__, "--threads", str(a.threads)]
    results = {"threads": a.threads, "epochs": [], "compare": None}
    for d in (512, 2048):
        r = subprocess.run(child + ["--one", str(big), str(d), "auto"], check=True, capture_output=True, text=True)
        results["epochs"].append(json.loads(r.stdout.splitlines()[-1]))
        print(results["epochs"][-1], flush=True)
    r = subprocess.run(child + ["--compare", str(small), "512"], check=True, capture_output=True, text=True)
    results["compare"] = json.loads(r.stdout.splitlines()[-1])
    print(results["compare"], flush=True)
    if not a.quick:
        write_json(a.out, results)


if __name__ == "__main__":
    main()
