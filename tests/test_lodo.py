"""benchmarks/pool.py and benchmarks/lodo.py on a tiny synthetic pool: the commands behind docs/lodo.md."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks import lodo, pool
from tests.library.synthetic_run import make_run

ROOT = Path(__file__).resolve().parents[1]


def _tiny_pool(save: Path) -> list:
    """Two 'datasets' of two grid runs, one extra run and one fine-tuning grid run each, written where the pool
    expects them."""
    runs = [pool.Run(f"{d}_{g}", d, "uniform", 0.3, seed, ("--dataset", d, "--net_type", "cnn", "--depth", "2"))
            for d in ("alpha", "beta") for g, seed in (("grid", 1), ("grid", 2), ("extra", 3), ("finetune_grid", 4))]
    for i, run in enumerate(runs):
        folder = make_run(run.run_dir(save), n=80, epochs=6 + 2 * i, classes=4, noise=0.3, seed=i)
        (folder / "summary.json").write_text("{}")
    return runs


def test_lodo_trains_on_the_other_dataset_only_and_writes_the_table(tmp_path, monkeypatch):
    save = tmp_path / "pool"
    monkeypatch.setattr(lodo, "POOL", _tiny_pool(save))
    a = argparse.Namespace(pool=str(save), candidates=["prob+margin, anchored"], length=8, max_per_run=50,
                           epochs=1, threads=1, leave_out=[], label="")
    results: dict = {}
    lodo.evaluate("alpha", a, results)
    # One detector, trained on the 4 beta runs (never on alpha), scored both alpha grid runs; the fine-tuning
    # grid run is a held-out setting of its own.
    ckpt = next((save / "lodo").glob("without_alpha__*.pth.tar"))
    import torch
    trained_on = torch.load(ckpt, weights_only=True)["trained_on"]
    assert len(trained_on) == 4 and all("beta" in p for p in trained_on)
    cell = results["alpha|uniform 0.3"]
    assert len(cell["detector: prob+margin, anchored"]) == 2 and len(cell["aum"]) == 2
    assert len(results["alpha fine-tuned|uniform 0.3"]["aum"]) == 1
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
    # Leaving a group out trains another detector, on the 3 other beta runs, and labels its column.
    left = {}
    lodo.evaluate("alpha", argparse.Namespace(**{**vars(a), "leave_out": ["beta_finetune_grid"],
                                                 "label": " (no fine-tuning)"}), left)
    assert "detector: prob+margin, anchored (no fine-tuning)" in left["alpha|uniform 0.3"]
    new = set((save / "lodo").glob("without_alpha__*.pth.tar")) - {ckpt}
    assert len(new) == 1 and len(torch.load(new.pop(), weights_only=True)["trained_on"]) == 3


def test_pool_command_lists_what_is_done(tmp_path):
    out = subprocess.run([sys.executable, "benchmarks/pool.py", "--save", str(tmp_path), "--dry_run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    # From scratch: 2 x 18 grid, 2 x 10 extras, 12 shapes; fine-tuning: 2 x 18 grid, 4 + 4 extras, 6 shapes.
    assert out.returncode == 0 and len(lines) == len(pool.POOL) == 68 + 36 + 14
    assert all(line.startswith("to do ") for line in lines)
    # grids: 2 datasets x 2 rates x 3 seeds, twice; extras: 6 + 2; shapes: 4 + 2
    assert sum("--noise_type instance" in line for line in lines) == 2 * (2 * 6) + 6 + 2 + 4 + 2
    assert sum("--dataset shapes" in line for line in lines) == 12 + 6
    # Every fine-tuning run starts from a backbone of another dataset, at a constant low rate.
    tuned = [line for line in lines if "--pretrained" in line]
    assert len(tuned) == 36 + 14 and all("--milestones ''" in line for line in tuned)
    assert all(("--dataset fashion_mnist" in line) == ("shapes_cnn2.pt" in line) for line in tuned)


def test_a_backbone_is_the_clean_run_s_last_weights_without_the_head(tmp_path):
    """``make_backbones`` on a finished clean run: every tensor but the head's, which --pretrained then
    starts afresh in a network for other images and classes."""
    import torch
    from models.registry import build_model

    save = tmp_path / "pool"
    run = pool.BACKBONES["fashion_mnist_cnn3"]
    trained = build_model("cnn", 3, num_classes=10, in_channels=1, image_size=28)
    run.run_dir(save).mkdir(parents=True)
    torch.save(trained.state_dict(), run.run_dir(save) / "model.pth.last")
    (run.run_dir(save) / "summary.json").write_text("{}")  # done: nothing is trained
    assert pool.make_backbones({"fashion_mnist_cnn3"}, save, jobs=1, threads=1) == 0
    backbone = torch.load(pool.backbone_file(save, "fashion_mnist_cnn3"), weights_only=True)
    assert set(backbone) == set(trained.state_dict()) - {"fc.weight", "fc.bias"}
    said: list = []
    tuned = build_model("cnn", 3, num_classes=10, in_channels=1, image_size=8,
                        pretrained=str(pool.backbone_file(save, "fashion_mnist_cnn3")), log=said.append)
    assert all(torch.equal(tuned.state_dict()[k], v) for k, v in backbone.items())
    assert len(said) == 1 and "fc.bias, fc.weight" in said[0] and "starts afresh" in said[0]
