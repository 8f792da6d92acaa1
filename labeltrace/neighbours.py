"""Neighbour agreement: how many of a sample's nearest neighbours, in the network's own feature space, share its
assigned label, at each epoch.

Every other detector input reads one sample's softmax curve. This one reads the labels *around* a sample: early
in training a mislabeled image sits among images of its true class, whose labels are mostly right, so few of its
neighbours carry its (wrong) label; a clean image sits among its own class. The features are the input of the
classifier's last linear layer (the penultimate activations), captured in the same forward pass that gives the
softmax. A :class:`FeatureStore` keeps one epoch of them, float16 and bounded in memory; :func:`agreement` runs
one k-nearest-neighbour search per epoch: exact (O(N^2 D), in blocks, on the features' device) where that is
cheap, else faiss's inverted-file index (:func:`choose_search`; docs/neighbours_scale.md).

Stored as ``neighbours`` in ``training_dynamics.npz``: float16 of shape (N, T), row ``n`` the same sample as
``td[n]`` (docs/formats.md).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from labeltrace.errors import UsageError

__all__ = ["DEFAULT_K", "FeatureTap", "head_of", "agreement", "disagreement"]

DEFAULT_K = 20
SEARCHES = ("auto", "exact", "ivf")
EXACT_MAX_COST = 50_000 ** 2 * 512  # N^2 D of the largest exact search on the CPU: about 20 s on 2 cores
IVF_PROBES = 16  # inverted lists visited per query
IVF_TRAIN_PER_LIST = 64  # training rows per list of the k-means that places them
FEATURE_BUDGET = 1 << 29  # bytes of float16 features kept per epoch (512 MiB): 128 dimensions at 1.28M samples
MIN_DIM = 32
PROJECTION_SEED = 0
_BLOCK_VALUES = 1 << 26  # similarities held at a time: 256 MB of float32 (1,342 rows at N = 50k)
_GPU_BLOCK_VALUES = 1 << 28  # on a GPU 1 GB: fewer, larger products (210 rows at N = 1.28M)
_CHUNK_ROWS = 1 << 16  # rows added to or searched in the inverted-file index at a time


def head_of(model: nn.Module) -> nn.Linear:
    """The classifier's last linear layer: the last ``nn.Linear`` among ``model.modules()`` (the head of every
    network of ``models/``, and of torchvision's and Hugging Face's image classifiers)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer whose input could serve as features")
    return linears[-1]


class FeatureTap:
    """Collects the input of ``model``'s head (:func:`head_of`) at every forward call, detached, float32: one
    (B, D) tensor per call, in call order, in :attr:`batches`. A context manager: the hook is removed on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.head = head_of(model)
        self.batches: list[torch.Tensor] = []
        self._handle = None

    def _hook(self, _module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self.batches.append(inputs[0].detach().flatten(1).float())

    def __enter__(self) -> FeatureTap:
        self._handle = self.head.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


@torch.no_grad()
def agreement(features: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, *, k: int = DEFAULT_K,
              search: str = "auto") -> np.ndarray:
    """For each row, the fraction of its ``k`` nearest other rows (cosine similarity) whose label equals its own.

    Parameters
    ----------
    features : array of shape (N, D)
    labels : int array of shape (N,), the assigned labels
    k : neighbours per row; fewer when N - 1 < k
    search : ``"exact"`` (blocked, on the features' device), ``"ivf"`` (faiss's inverted-file index on the CPU,
        approximate: the ``faiss`` extra) or ``"auto"`` (:func:`choose_search`)

    Returns
    -------
    float32 array of shape (N,), values in {0, 1/k, ..., 1}; ties in similarity are broken by the search.
    """
    x = torch.as_tensor(features)
    y = torch.as_tensor(labels, device=x.device).long()
    n = len(x)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got {tuple(x.shape)}")
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(y.shape)}")
    k = min(k, n - 1)
    if k < 1:
        return np.ones(n, dtype=np.float32)
    if choose_search(n, x.shape[1], x.device, search=search, warn=True) == "ivf":
        return _ivf_agreement(x, y.cpu().numpy(), k)  # normalizes chunk by chunk: no float32 copy of x
    return _exact_agreement(nn.functional.normalize(x.float(), dim=1), y, k)


def choose_search(n: int, d: int, device: torch.device | str = "cpu", *, search: str = "auto",
                  warn: bool = False) -> str:
    """``"exact"`` or ``"ivf"`` for ``n`` samples of ``d`` dimensions on ``device``.

    ``auto``: exact on a GPU (a matrix product there is cheap) and wherever N^2 D stays under
    :data:`EXACT_MAX_COST` (about 20 s an epoch on 2 CPU cores); beyond that the inverted-file index, or, with
    faiss missing, exact with a one-line warning of its cost (``warn``). An explicit ``ivf`` without faiss is a
    one-line :class:`UsageError` naming the extra."""
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if search == "ivf":
        _faiss()
        return "ivf"
    if search == "exact" or torch.device(device).type != "cpu" or n * n * d <= EXACT_MAX_COST:
        return "exact"
    if _faiss(required=False) is not None:
        return "ivf"
    if warn:
        minutes = n * n * d / EXACT_MAX_COST * 20 / 60
        warnings.warn(f"neighbour agreement: an exact search over {n:,} samples takes about {minutes:.0f} min an "
                      "epoch on a 2-core CPU; pip install 'labeltrace[faiss]' for the approximate one", stacklevel=3)
    return "exact"


def _exact_agreement(x: torch.Tensor, y: torch.Tensor, k: int) -> np.ndarray:
    """Blocked exact search over unit rows ``x`` (N, D): :data:`_BLOCK_VALUES` similarities at a time."""
    n = len(x)
    out = torch.empty(n, dtype=torch.float32, device=x.device)
    rows = max(1, (_GPU_BLOCK_VALUES if x.is_cuda else _BLOCK_VALUES) // n)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        sim = x[start:stop] @ x.T
        sim[torch.arange(stop - start), torch.arange(start, stop)] = -torch.inf  # a row is not its own neighbour
        nearest = sim.topk(k, dim=1).indices
        out[start:stop] = (y[nearest] == y[start:stop, None]).float().mean(1)
    return out.cpu().numpy()


def ivf_params(n: int) -> tuple[int, int]:
    """(lists, lists probed) of the inverted-file index for ``n`` rows: 4 sqrt(N) lists, 16 probed. Measured at
    N = 100k on clustered features of 100 and of 1,000 classes (docs/neighbours_scale.md): mean |agreement -
    exact| 0.0006 and 0.0000, where sqrt(N) lists with 8 probed gave 0.0000 on one and 0.13 on the other, in
    twice to four times the time."""
    lists = max(1, int(round(4 * np.sqrt(n))))
    return lists, min(lists, IVF_PROBES)


def _ivf_agreement(x: torch.Tensor, y: np.ndarray, k: int) -> np.ndarray:
    """The agreement from faiss's inverted-file index of the rows of ``x`` (N, D), unit-normalized and rounded
    to float16 (inner product = cosine), on the CPU, built and queried in chunks so that no float32 copy of the
    whole epoch is made."""
    faiss = _faiss()
    faiss.omp_set_num_threads(torch.get_num_threads())
    n, d = x.shape
    lists, probes = ivf_params(n)
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, lists, faiss.ScalarQuantizer.QT_fp16,
                                          faiss.METRIC_INNER_PRODUCT)
    index.by_residual = False  # the rows themselves in float16, as the feature store holds them
    index.cp.seed, index.cp.niter, index.cp.max_points_per_centroid = 0, 10, IVF_TRAIN_PER_LIST
    step = max(1, n // (lists * IVF_TRAIN_PER_LIST))  # a fixed, evenly spread training sample
    index.train(_host(x[::step]))
    for start in range(0, n, _CHUNK_ROWS):
        index.add(_host(x[start:start + _CHUNK_ROWS]))
    index.nprobe = probes
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        ids = index.search(_host(x[start:stop]), k + 1)[1]
        mine = np.arange(start, stop)[:, None]
        ids = np.where(ids == mine, -1, ids)  # a row is not its own neighbour
        order = np.argsort(ids < 0, axis=1, kind="stable")[:, :k]  # found ones first, in similarity order
        ids = np.take_along_axis(ids, order, axis=1)
        found = ids >= 0
        same = (y[np.where(found, ids, 0)] == y[start:stop, None]) & found
        out[start:stop] = same.sum(1) / np.maximum(found.sum(1), 1)
    return out


def _host(x: torch.Tensor) -> np.ndarray:
    """Rows of ``x`` as the index holds them: unit-normalized, float16 values, a float32 array on the CPU."""
    rows = nn.functional.normalize(x.detach().cpu().float(), dim=1).to(torch.float16)
    return np.ascontiguousarray(rows.float().numpy())


def _faiss(required: bool = True):
    """The ``faiss`` module, or None (``required=False``); missing and required: a one-line UsageError."""
    try:
        import faiss
    except ImportError:
        if required:
            raise UsageError("the approximate neighbour search needs faiss: pip install 'labeltrace[faiss]' "
                             "(or search='exact')") from None
        return None
    return faiss


class FeatureStore:
    """One epoch's features of every sample, (N, dim) float16 on the device they come from, filled batch by batch.

    Rows are stored unit-normalized (cosine similarity is all the search reads, and float16 then cannot
    overflow). Where (N, D) float16 would pass ``budget`` bytes (:data:`FEATURE_BUDGET`), each unit row is first
    multiplied by a fixed Gaussian projection (D, dim), seeded, so the same on every run and resume, ``dim`` from
    :func:`stored_dim`: inner products of unit rows survive a random projection up to a small distortion
    (Johnson-Lindenstrauss) whatever the data, where principal directions fitted on the features can keep the
    within-class spread and drop what tells classes apart (docs/neighbours_scale.md). Memory stays bounded at
    any N and D.
    """

    def __init__(self, num_samples: int, *, budget: int = FEATURE_BUDGET) -> None:
        self.num_samples, self.budget = num_samples, budget
        self.rows: torch.Tensor | None = None
        self.projection: torch.Tensor | None = None  # (D, dim), when rows are reduced
        self.features_dim = 0

    def add(self, idx: torch.Tensor | np.ndarray, features: torch.Tensor) -> None:
        """Rows ``idx`` (B,) get ``features`` (B, D); D must be the same for every batch of a run."""
        feats = nn.functional.normalize(features.detach().flatten(1).float(), dim=1)
        if self.rows is None:
            self._allocate(feats.shape[1], feats.device)
        elif feats.shape[1] != self.features_dim:
            raise ValueError(f"features: each batch must have the same width, got {feats.shape[1]} after "
                             f"{self.features_dim}")
        if self.projection is not None:
            feats = nn.functional.normalize(feats @ self.projection, dim=1)
        idx = torch.as_tensor(idx, device=self.rows.device).long()
        self.rows[idx] = feats.to(self.rows.device, torch.float16)

    def _allocate(self, d: int, device: torch.device) -> None:
        dim = stored_dim(self.num_samples, d, self.budget)
        if dim < d:
            gen = torch.Generator().manual_seed(PROJECTION_SEED)
            self.projection = (torch.randn(d, dim, generator=gen) / dim ** 0.5).to(device)
        self.features_dim = d
        self.rows = torch.zeros((self.num_samples, dim), dtype=torch.float16, device=device)

    def agreement(self, labels, *, k: int = DEFAULT_K, search: str = "auto") -> np.ndarray:
        """:func:`agreement` of the epoch's rows, (N,) float32."""
        if self.rows is None:
            raise ValueError("no features were added this epoch")
        return agreement(self.rows, labels, k=k, search=search)

    def describe(self, *, k: int, search: str = "auto") -> dict:
        """:func:`describe_search` of this store's features."""
        return describe_search(self.num_samples, self.features_dim, self.rows.device, k=k, search=search,
                               budget=self.budget)


def describe_search(n: int, d: int, device: torch.device | str = "cpu", *, k: int = DEFAULT_K,
                    search: str = "auto", budget: int = FEATURE_BUDGET, warn: bool = False) -> dict:
    """What the agreement of ``n`` samples with ``d`` features on ``device`` is made by, for a run's traces file:
    ``k``, ``search`` (exact or ivf), ``features_dim`` (d), ``dim`` (kept, :func:`stored_dim`) and, for ivf,
    ``lists`` and ``probed`` (:func:`ivf_params`). ``warn``: as :func:`choose_search`."""
    dim = stored_dim(n, d, budget)
    method = choose_search(n, dim, device, search=search, warn=warn)
    out = {"k": k, "search": method, "features_dim": d, "dim": dim}
    if method == "ivf":
        out["lists"], out["probed"] = ivf_params(n)
    return out


def free_memory(device: torch.device | str) -> int | None:
    """Bytes free on ``device`` (a GPU's free memory; the host's MemAvailable), or None where unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def stored_dim(n: int, d: int, budget: int = FEATURE_BUDGET) -> int:
    """The width a :class:`FeatureStore` keeps for ``n`` rows of ``d`` features: ``d`` when (n, d) float16 fits
    ``budget`` bytes, else the largest power of two that fits, at least :data:`MIN_DIM`."""
    if n * d * 2 <= budget:
        return d
    dim = MIN_DIM
    while dim * 2 < d and n * dim * 4 <= budget:
        dim *= 2
    return dim


def disagreement(neighbours: np.ndarray) -> np.ndarray:
    """The hand-crafted score of a recorded agreement: ``1 - mean over epochs``, shape (N,) float64 for
    ``neighbours`` (N, T); higher = more suspicious (the Deep k-NN filter's vote, averaged over training)."""
    return 1.0 - np.asarray(neighbours, dtype=np.float64).mean(axis=1)
