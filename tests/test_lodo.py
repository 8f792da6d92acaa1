"""benchmarks/pool.py and benchmarks/lodo.py on a tiny synthetic pool: the commands behind docs/lodo.md."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks import lodo, pool
from tests.synthetic_run import make_run

ROOT = Path(__file__).resolve().parents[1]


def _tiny_pool(save: Path) -> list:
    """Two 'datasets' of two grid runs and one extra run each, written where the pool expects them."""
    runs = [pool.Run(f"{d}_{g}", d, "uniform", 0.3, seed, ("--dataset", d, "--net_type", "cnn", "--depth", "2"))
            for d in ("alpha", "beta") for g, seed in (("grid", 1), ("grid", 2), ("extra", 3))]
    for i, run in enumerate(runs):
        folder = make_run(run.run_dir(save), n=80, epochs=6 + 2 * i, classes=4, noise=0.3, seed=i)
        (folder / "summary.json").write_text("{}")
    return runs


def test_lodo_trains_on_the_other_dataset_only_and_writes_the_table(tmp_path, monkeypatch):
    save = tmp_path / "pool"
    monkeypatch.setattr(lodo, "POOL", _tiny_pool(save))
    a = argparse.Namespace(pool=str(save), candidates=["prob+margin, anchored"], length=8, max_per_run=50,
                           epochs=1, threads=1)
    results: dict = {}
    lodo.evaluate("alpha", a, results)
    # One detector, trained on the 3 beta runs (never on alpha), scored both alpha grid runs.
    ckpt = next((save / "lodo").glob("without_alpha__*.pth.tar"))
    import torch
    trained_on = torch.load(ckpt, weights_only=True)["trained_on"]
    assert len(trained_on) == 3 and all("beta" in p for p in trained_on)
    cell = results["alpha|uniform 0.3"]
    assert len(cell["detector: prob+margin, anchored"]) == 2 and len(cell["aum"]) == 2
    # The synthetic flipped samples stay behind their true class until late: AUM ranks them well.
    assert np.mean([auc for auc, _ in cell["aum"]]) > 0.9
    out = tmp_path / "lodo.md"
    lodo.render(results, out, "test")
    text = out.read_text()
    assert "## held out: alpha, ROC-AUC" in text and "| uniform 0.3 |" in text and "| aum |" in text
    assert json.loads(out.with_suffix(".json").read_text())["results"].keys() == results.keys()
    # A second call reuses the trained detector (same pool, same options: same file name).
    lodo.evaluate("alpha", a, {})
    assert len(list((save / "lodo").glob("without_alpha__*.pth.tar"))) == 1


def test_pool_command_lists_what_is_done(tmp_path):
    out = subprocess.run([sys.executable, "benchmarks/pool.py", "--save", str(tmp_path), "--dry_run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and len(lines) == len(pool.POOL) == 68  # 2 x 18 grid, 2 x 10 extras, 12 shapes
    assert all(line.startswith("to do ") for line in lines)
    # grid: 2 datasets x 2 rates x 3 seeds; extras: 6; shapes: 4
    assert sum("--noise_type instance" in line for line in lines) == 2 * 6 + 6 + 4
    assert sum("--dataset shapes" in line for line in lines) == 12
