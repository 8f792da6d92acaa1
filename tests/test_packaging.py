"""``pip install <clone>`` into a fresh venv, used from outside the clone: one package named ``labeltrace``,
nothing under a generic name, Hugging Face's ``datasets`` unshadowed beside it, the console command working, the
library's tests (``tests/library``) passing against the installed files, and a loop recorded and ranked with no
extra installed.
The one module of the suite that needs the package index (setuptools, ``datasets``): it skips without one.

The venv sees this environment's packages (torch and the rest) through a ``.pth`` line, so that the test
installs only the project and ``datasets`` (from PyPI) instead of a second torch."""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from labeltrace.runfiles import read_metadata

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert done.returncode == 0, (done.stdout[-1500:], done.stderr[-3000:])
    return done.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("user")
    env = home / "venv"
    _run([sys.executable, "-m", "venv", env], home)
    site = Path(_run([env / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     home).strip())
    (site / "host_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # What an sdist holds, copied, since pip builds in the source tree (build/, *.egg-info) and the clone stays clean.
    source = home / "source"
    shutil.copytree(ROOT / "labeltrace", source / "labeltrace", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    _pip_install(env, source, home)  # builds with setuptools from the package index
    _pip_install(env, "datasets", home)
    return env


def _pip_install(env: Path, what, cwd: Path) -> None:
    """``pip install what`` in ``env``; without a reachable package index the module's tests skip (the only
    tests of the suite that need the network)."""
    done = subprocess.run([str(env / "bin/python"), "-m", "pip", "install", "-q", str(what)], cwd=cwd,
                          capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/bin:/bin", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    offline = ("No matching distribution", "Could not find a version", "NewConnectionError", "Network is unreachable",
               "Temporary failure in name resolution")
    if done.returncode and any(word in done.stderr for word in offline):
        pytest.skip(f"needs the package index to install {what}: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, (done.stdout[-1500:], done.stderr[-3000:])


def test_one_distinctive_package_is_installed(venv):
    # Every file the distribution installed, by top-level name in site-packages ("../" ones: the command in bin/).
    code = ("import importlib.metadata as m; "
            "print(sorted({f.parts[0] for f in m.files('labeltrace') if f.parts[0] != '..'}))")
    top = _run([venv / "bin/python", "-c", code], venv.parent)
    assert top.strip() == "['labeltrace', 'labeltrace-0.1.0.dist-info']", top
    assert (venv / "bin/labeltrace").is_file()
    where = _run([venv / "bin/python", "-c", "import labeltrace.predict as p; print(p.__file__, p.GENERALIST.is_file())"],
                 venv.parent)
    assert str(venv) in where and where.split()[1] == "True", where  # the generalist ships as package data


def test_hugging_face_datasets_is_not_shadowed(venv):
    out = _run([venv / "bin/python", "-c", "import labeltrace, datasets; print(datasets.__file__); "
                                           "print(hasattr(datasets, 'load_dataset'))"], venv.parent)
    assert "site-packages/datasets/" in out and out.split()[-1] == "True", out


def test_console_command_ranks_a_run_folder(venv, tmp_path, digits_run):
    out = _run([venv / "bin/labeltrace", "issues", digits_run, "--out", tmp_path / "out"], tmp_path)
    assert "1497 samples ranked by generalist_lstm_detector" in out, out
    table = pd.read_csv(tmp_path / "out" / "label_issues.csv")
    flipped = read_metadata(digits_run / "metadata.pth").label_flipped[table["index"].to_numpy()]
    # The table's order (rank 1 = most suspicious) against the synthesized flips; the library scores 0.998.
    assert roc_auc_score(flipped, -table["rank"].to_numpy()) > 0.97
    assert list(table.columns[:5]) == ["rank", "index", "assigned_label", "suggested_label", "p_noisy"]
    listed = _run([venv / "bin/labeltrace", "baselines"], tmp_path)
    assert "baseline:aum" in listed.split()



def test_library_tests_pass_against_the_installed_package(venv, tmp_path):
    """A file missing from the wheel, or a library module importing the clone's folders, fails here."""
    for folder in ("tests/library", "examples"):  # the examples are the adapters' tests' loops
        shutil.copytree(ROOT / folder, tmp_path / Path(folder).name, ignore=shutil.ignore_patterns("__pycache__"))
    where = _run([venv / "bin/python", "-c", "import labeltrace.api as a; print(a.__file__)"], tmp_path)
    assert where.startswith(str(venv)), where
    out = _run([venv / "bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "library"], tmp_path)
    assert " passed" in out and " failed" not in out, out[-2000:]


NO_EXTRAS = """
import sys
for name in ("cleanlab", "faiss", "pandas", "matplotlib", "transformers", "lightning", "pytorch_lightning", "PIL"):
    sys.modules[name] = None  # `import name` fails: as installed without any extra
import numpy as np, torch
from labeltrace import DynamicsRecorder, FeatureTap, find_label_issues, get_label_quality_scores
from labeltrace.baselines import score_baselines
from labeltrace.traces import load_run

torch.manual_seed(0)
rng = np.random.default_rng(0)
truth = np.repeat(np.arange(3), 40)
x = torch.tensor(rng.normal(size=(120, 2)) + 3 * np.eye(3)[truth][:, :2], dtype=torch.float32)
labels, flip = truth.copy(), rng.choice(120, 12, replace=False)
labels[flip] = (labels[flip] + rng.integers(1, 3, 12)) % 3
model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.5)
recorder = DynamicsRecorder("run", labels=labels, num_classes=3, true_labels=truth)
for epoch in range(30):
    with FeatureTap(model) as tap:
        logits = model(x)
    torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels)).backward()
    opt.step(); opt.zero_grad()
    recorder.update(np.arange(120), logits.detach(), features=tap.batches[0])
    recorder.end_epoch()
recorder.save()
found = find_label_issues("run", num_to_find=12)
quality = get_label_quality_scores("run")
rank = np.argsort(np.argsort(-quality)) + 1  # 1 = the best label quality
auc = (rank[flip].sum() - 12 * 13 / 2) / (12 * 108)  # Mann-Whitney: flipped ranked below clean
run = load_run("run")
print(int(found[flip].sum()), round(float(auc), 3), sorted(score_baselines(run.td, run.class_ids)))
"""


def test_a_loop_is_recorded_and_ranked_with_no_extra_installed(venv, tmp_path):
    found, auc, names = _run([venv / "bin/python", "-c", NO_EXTRAS], tmp_path).split(maxsplit=2)
    # 12 labels of 120 changed at random on three blobs: the generalist ranks them low (0.978 measured)
    assert float(auc) > 0.9 and int(found) >= 8, (found, auc)  # 10 of 12 measured
    names = eval(names)  # the default scores are those whose packages are installed: no cleanlab score
    assert "aum" in names and "mean_loss" in names and not [n for n in names if n.startswith("cl_")], names
