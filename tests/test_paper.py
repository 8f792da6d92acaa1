"""paper/: each table's script end to end at the tiny scale (digits, 300 images, a few epochs), its table
checked against the run folders it reads and against values recomputed here; the paper-scale dry runs
(the exact runs, with time estimates); bad arguments; the DivideMix label files."""
import contextlib
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from labeltrace.errors import UsageError
from labeltrace.runfiles import read_metadata
from labeltrace.metrics import detection_metrics
from labeltrace.traces import load_run
from labeltrace.predict import GENERALIST_NAME
from paper import common, data_debugging, dividemix_files, large_datasets, small_datasets, timing, transfer
from paper.detectors import RECIPES
from paper.jobs import DETECTORS_DIR
from paper.scales import PROXY, TINY as TINY_SCALE
from labeltrace.scoring import score_run

ROOT = Path(__file__).resolve().parents[1]
N = 300  # the tiny scale's training images
TINY = ["--scale", "tiny", "--detector_seed", "1"]  # detectors on the scored runs: fewer processes in CI
SMALL_RUN = "digits_cnn3_percmislabeled0.2_uniform/computation4td_seed1"
SHAPES_RUN = "shapes_cnn3_percmislabeled{r}_{kind}/computation4td_seed1"  # every transfer stand-in at this scale
TABLE_ARGS = {"transfer": ["--detection_only"]}  # its STEP 3 rows are §4.1's code, tested there: fewer processes


def run_table(module, *argv) -> tuple[str | None, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        text = common.main(module, [str(a) for a in argv])
    return text, out.getvalue()


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The four tables made in one results folder (they share the detectors, WebVision's and CUB's runs)."""
    save = tmp_path_factory.mktemp("paper")
    tables = {m.NAME: run_table(m, "none", save, *TINY, *TABLE_ARGS.get(m.NAME, []))[0]
              for m in (small_datasets, large_datasets, data_debugging, transfer)}
    return save / "tiny", tables


def expected_removed(ratio: float) -> int:
    return N - int(N * (1 - ratio))  # the original's cut: keep int(N * (1 - r))


def test_small_datasets_table(tiny):
    save, tables = tiny
    header, *rows = table_rows(tables["small_datasets"])
    assert header[:3] == ["setting", "method", "remove ratio"] and "ROC-AUC" in header and len(rows) == 12
    col = {name: i for i, name in enumerate(header)}
    by = {(r[0], r[1], r[2]): r for r in rows}
    for setting, detector, ratios in (("cifar10 (uniform 0.2)", "cifar10_0.2", (0.15, 0.2, 0.25)),
                                      ("cifar100 (uniform 0.4)", "cifar100_0.3", (0.35, 0.4, 0.45))):
        for ratio in ratios:
            assert by[(setting, f"detector {detector}", str(ratio))][col["removed"]] == str(expected_removed(ratio))
        oracle = by[(setting, "oracle (flipped removed)", "-")]
        assert oracle[col["flipped among removed"]] == "1.0000" and oracle[col["noise after"]] == "0.0000"
        assert by[(setting, "no removal", "-")][col["removed"]] == "0"
    # The detector's and AUM's ROC-AUC, recomputed here from the run's traces.
    run = load_run(save / SMALL_RUN)
    for method, spec in (("detector cifar10_0.2", str(save / DETECTORS_DIR / "cifar10_0.2_lstm_detector.pth.tar")),
                         ("AUM (scores only, no retraining)", "baseline:aum")):
        m = detection_metrics(score_run(spec, run).p_noisy, run.label_flipped, remove_ratio=0.2)
        row = next(r for r in rows if r[0] == "cifar10 (uniform 0.2)" and r[1] == method)
        assert row[col["ROC-AUC"]] == f"{m.roc_auc:.4f}" and row[col["mAP"]] == f"{m.average_precision:.4f}"
    assert (save / "tables" / "small_datasets.md").read_text().strip() == tables["small_datasets"].strip()


def test_transfer_detection_tables(tiny):
    """Every (dataset, noise) row; the cells recomputed here from the shapes runs' traces with each score."""
    save, tables = tiny
    text = tables["transfer"]
    assert "### Remove and retrain" not in text  # --detection_only
    roc_part, map_part = text.split("### Detection without retraining: mAP")
    roc, maps = table_rows(roc_part), table_rows(map_part)
    header = ["dataset", "noise", "detector cifar10_0.2", "detector cifar100_0.3", "generalist", "AUM (hand-crafted)",
              "confidence (hand-crafted)"]
    assert roc[0] == header and maps[0] == header
    assert [r[:2] for r in roc[1:]] == [[d, f"{k} {r}"] for d in transfer.DATASETS for k, r in transfer.NOISES]
    specs = [str(save / DETECTORS_DIR / f"{name}_lstm_detector.pth.tar") for name in transfer.DETECTORS]
    specs += [GENERALIST_NAME, "baseline:aum", "baseline:confidence"]
    for row_roc, row_map in zip(roc[1:], maps[1:]):
        kind, ratio = row_roc[1].split()
        run = load_run(save / SHAPES_RUN.format(r=ratio, kind=kind))
        for i, spec in enumerate(specs, start=2):
            m = detection_metrics(score_run(spec, run).p_noisy, run.label_flipped, remove_ratio=0.2)
            assert (row_roc[i], row_map[i]) == (f"{m.roc_auc:.4f}", f"{m.average_precision:.4f}")


@pytest.mark.parametrize("scale", [PROXY, TINY_SCALE])
def test_transfer_stand_ins_are_never_a_detector_s_own(scale):
    """A transfer at every scale: no dataset the table scores stands on data either CIFAR detector trained on."""
    trained_on = {scale.profile(RECIPES[name].paper_dataset).dataset for name in transfer.DETECTORS}
    scored = {scale.profile(name).dataset for name in transfer.DATASETS}
    assert trained_on == {"digits", "fashion_mnist"} if scale is PROXY else {"digits"}
    assert scored == {"shapes"} and not scored & trained_on


def test_dry_run_without_the_data_folder_plans_the_downloads(tmp_path):
    """<datadir> not made yet: the runs listed, each missing dataset named with its layout, exit 0, nothing written."""
    _, out = run_table(transfer, tmp_path / "data", tmp_path / "results", "--dry_run")
    assert "34 runs (14 STEP 1, 2 STEP 2, 18 STEP 3; 30 STEP 3 retrainings)" in out
    assert f"note: <datadir> {tmp_path / 'data'} does not exist yet; the runs need 5 datasets in it:" in out
    notes = [line.strip() for line in out.splitlines() if line.startswith(f"  {tmp_path / 'data'}/")]
    assert [n.split("/ holding")[0].rsplit("/", 1)[1] for n in notes] == \
        ["caltech256", "cifar10", "cifar100", "cub_200_2011", "tiny_imagenet"]
    assert any("256_ObjectCategories/<NNN.class>/<image>" in n and "seed 0" in n for n in notes)
    assert any("val/val_annotations.txt" in n for n in notes)
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()
    done = subprocess.run(["bash", "paper/table_small_datasets.sh", str(tmp_path / "data"), str(tmp_path / "r"),
                           "--dry_run"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "cifar100 --data" in done.stdout and "uniform --noise_ratio 0.4" in done.stdout
    assert "does not exist yet; the runs need 2 datasets" in done.stdout


def test_a_finished_table_is_not_rerun(tiny):
    save, tables = tiny
    text, out = run_table(small_datasets, "none", save.parent, *TINY)
    assert "11 done, 0 to run" in out
    assert out.count("all done") == 3 and "runs in" not in out  # no process started
    assert text == tables["small_datasets"]


def test_large_datasets_table(tiny):
    _, tables = tiny
    header, *rows = table_rows(tables["large_datasets"])
    col = {name: i for i, name in enumerate(header)}
    assert [r[:2] for r in rows] == [[d, m] for d in ("webvision50", "clothing100k")
                                     for m in ("no removal", "detector cifar100_0.3", "random 20%")]
    assert [r[col["removed"]] for r in rows] == ["0", str(expected_removed(0.2)), str(expected_removed(0.2))] * 2
    detector_rows = [r for r in rows if r[1].startswith("detector")]
    assert all(0 < float(r[col["ROC-AUC (proxy only)"]]) <= 1 for r in detector_rows)  # the stand-ins' truth
    assert all(r[col["ROC-AUC (proxy only)"]] == "-" for r in rows if not r[1].startswith("detector"))


def test_data_debugging_table_and_label_files(tiny):
    save, tables = tiny
    header, *rows = table_rows(tables["data_debugging"])
    col = {name: i for i, name in enumerate(header)}
    assert [r[1] for r in rows] == ["0.2_sym.json", "0.2_sym_0.05gt.json", "0.2_sym_0.10gt.json",
                                    "(the dataset's own labels)", "repair0.05.json", "repair0.10.json"]
    assert [r[col["relabelled"]] for r in rows] == ["0", "15", "30", "0", "15", "30"]
    files = save / "dividemix" / "seed1"
    meta = read_metadata(save / SHAPES_RUN.format(r=0.2, kind="uniform") / "metadata.pth")  # CUB's stand-in
    noisy = json.loads((files / "cub_200_2011" / "0.2_sym.json").read_text())
    assert noisy == meta.assigned_targets.tolist() and len(noisy) == N
    for name, row in (("0.2_sym_0.05gt.json", rows[1]), ("0.2_sym_0.10gt.json", rows[2])):
        fixed = np.array(json.loads((files / "cub_200_2011" / name).read_text()))
        changed = fixed != np.array(noisy)
        assert changed.sum() == int(row[col["changed"]]) == int(row[col["fixed"]])  # truth: each change fixes
        np.testing.assert_array_equal(fixed[changed], meta.true_targets[changed])
    for ratio in (0.05, 0.1):
        assert len(json.loads((files / "mini_webvision" / dividemix_files.repair_name(ratio)).read_text())) == N


@pytest.mark.parametrize("module, argv, counts", [
    (small_datasets, [], {"STEP 1": 4, "STEP 2": 2, "STEP 3": 6}),
    (small_datasets, ["--seeds", "1", "2", "3"], {"STEP 1": 8, "STEP 2": 2, "STEP 3": 18}),
    (large_datasets, [], {"STEP 1": 3, "STEP 2": 1, "STEP 3": 2}),
    (data_debugging, [], {"STEP 1": 4, "STEP 2": 1, "STEP 2 (fine-tune)": 1, "STEP 3": 2, "data debugging": 4}),
    # CIFAR-100 flip 0.4 besides: its STEP 1 run and three STEP 3 processes.
    (small_datasets, ["--flip"], {"STEP 1": 5, "STEP 2": 2, "STEP 3": 9}),
    # 2 detector runs + 3 datasets x 4 noises; STEP 3: 3 datasets x 2 uniform noises x 3 processes.
    (transfer, [], {"STEP 1": 14, "STEP 2": 2, "STEP 3": 18}),
    (transfer, ["--detection_only", "--seeds", "1", "2"], {"STEP 1": 26, "STEP 2": 2}),
])
def test_paper_scale_dry_run_lists_every_run_with_estimates(tmp_path, module, argv, counts):
    (tmp_path / "data").mkdir()
    _, out = run_table(module, tmp_path / "data", tmp_path / "results", "--dry_run", *argv)
    listed = {}
    stage = None
    for line in out.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            stage = line[:-1]
        elif line.startswith("  [to run]"):
            listed[stage] = listed.get(stage, 0) + 1
    assert listed == counts
    totals = [line for line in out.splitlines() if line.startswith("estimated time")]
    assert len(totals) == 2 and all(" h" in t or " d" in t for t in totals) and "not estimated" not in out
    assert not (tmp_path / "results").exists()  # a dry run writes nothing


def test_gpu_estimate_is_the_measured_epoch():
    """CIFAR-10 STEP 1 at the paper's recipe, eval recording: 200 epochs of the README's measured H200 epoch."""
    seconds = timing.training_seconds("gpu", "resnet32_32px", n_train=50_000, n_eval=60_000, epochs=200)
    assert seconds == pytest.approx(timing.STARTUP_SECONDS + 200 * (1.75 + 0.28), rel=1e-9)


@pytest.mark.parametrize("argv, message", [
    (["/no/such/folder", "{tmp}/r"], "<datadir> /no/such/folder: no such folder"),
    (["none", "{tmp}/r"], "<datadir> none: the paper scale reads"),
    (["none", "{tmp}/r", "--scale", "huge"], "--scale: invalid choice"),
    (["none", "{tmp}/r", "--scale", "tiny", "--seeds", "1", "1"], "--seeds: each seed once"),
    (["none", "{tmp}/r", "--scale", "tiny", "--no_such_flag"], "unrecognized arguments"),
    (["{tmp}", "{tmp}/r"], "not found: "),  # the paper scale's datasets are not under <datadir>
])
def test_bad_arguments_are_one_line_errors_and_write_nothing(tmp_path, argv, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        run_table(small_datasets, *[a.format(tmp=tmp_path) for a in argv])
    assert not (tmp_path / "r").exists()


def test_webvision_filelist_only_at_paper_scale(tmp_path):
    with pytest.raises(UsageError, match="--webvision_filelist: only at the paper scale"):
        run_table(data_debugging, "none", tmp_path / "r", "--scale", "tiny", "--webvision_filelist", tmp_path)


def test_shell_script_usage_and_error(tmp_path):
    usage = subprocess.run(["bash", "paper/table_small_datasets.sh"], cwd=ROOT, capture_output=True, text=True)
    assert usage.returncode == 2
    assert "usage: bash paper/table_small_datasets.sh <datadir> <result_save_path>" in usage.stderr
    bad = subprocess.run(["bash", "paper/table_large_datasets.sh", "none", str(tmp_path / "r")], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error: ")


def test_filelist_labels_follow_webvision_order(tmp_path):
    """Ours by file name where the image is ours, the list's own label elsewhere (classes beyond ours)."""
    filelist = tmp_path / "train_filelist_google.txt"
    filelist.write_text("google/q0001/a.jpg 0\ngoogle/q0070/z.jpg 69\ngoogle/q0002/b.jpg 1\n")
    by_path = {"/data/webvision50/train/1/b.jpg": 0, "/data/webvision50/train/0/a.jpg": 1}
    assert dividemix_files.filelist_labels(by_path, filelist) == [1, 69, 0]
    with pytest.raises(UsageError, match="1 of the 3 training images are not in it"):
        dividemix_files.filelist_labels({**by_path, "/x/c.jpg": 2}, filelist)
    with pytest.raises(UsageError, match="two images named a.jpg"):
        dividemix_files.filelist_labels({**by_path, "/x/a.jpg": 2}, filelist)
    filelist.write_text("google/q0001/a.jpg\n")
    with pytest.raises(UsageError, match=r"train_filelist_google.txt:1: expected '<image path> <label>'"):
        dividemix_files.filelist_labels(by_path, filelist)
