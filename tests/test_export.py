"""The data-maps export: record fields, class order, softmax equivalence, folder layout, CLI."""
import json

import numpy as np
import pytest

from labeltrace.errors import UsageError
from labeltrace import baselines as bl
from pipeline.export import epoch_records, export_data_maps, main
from tests.library.synthetic_run import make_run, make_traces

TD = np.array([[[0.75, 0.125, 0.125], [0.875, 0.0625, 0.0625]],
               [[0.25, 0.625, 0.125], [0.375, 0.5, 0.125]]], dtype=np.float16)
LABELS = np.array([[2, 0, 1], [0, 1, 2]], dtype=np.int16)


def test_records_fields_and_class_order():
    records = epoch_records(TD, LABELS, 1, guids=np.array([7, 9]))
    assert [sorted(r) for r in records] == [["gold", "guid", "logits_epoch_1"]] * 2
    assert [r["guid"] for r in records] == [7, 9] and [r["gold"] for r in records] == [2, 0]
    # Sample 0: class 2 is channel 0 (0.875), class 0 channel 1, class 1 channel 2.
    np.testing.assert_allclose(np.exp(records[0]["logits_epoch_1"]), [0.0625, 0.0625, 0.875], rtol=1e-3)
    np.testing.assert_allclose(np.exp(records[1]["logits_epoch_1"]), [0.375, 0.5, 0.125], rtol=1e-3)


def test_softmax_of_logits_is_the_probability():
    td, labels, *_ = make_traces(n=20, epochs=3)
    for record, row in zip(epoch_records(td, labels, 2), range(20)):
        logits = np.array(record["logits_epoch_2"])
        p = np.exp(logits) / np.exp(logits).sum()
        assert p[record["gold"]] == pytest.approx(float(td[row, 2, 0]), abs=2e-3)
        assert np.isfinite(logits).all()


def test_zero_probability_is_finite():
    td = TD.copy()
    td[0, 0] = [1.0, 0.0, 0.0]
    assert np.isfinite(epoch_records(td, LABELS, 0)[0]["logits_epoch_0"]).all()


def _read_like_cartography(folder, suffix=".jsonl"):
    """cartography's read_training_dynamics: every file in the folder is an epoch."""
    files = sorted(folder.iterdir())
    dynamics = {}
    for epoch in range(len(files)):
        for line in open(folder / f"dynamics_epoch_{epoch}{suffix}"):
            rec = json.loads(line)
            if rec["guid"] not in dynamics:
                assert epoch == 0
                dynamics[rec["guid"]] = {"gold": rec["gold"], "logits": []}
            dynamics[rec["guid"]]["logits"].append(rec[f"logits_epoch_{epoch}"])
    return dynamics


def test_export_matches_data_map_confidence(tmp_path):
    td, labels, *_ = make_traces(n=30, epochs=5)
    paths = export_data_maps(td, labels, tmp_path, guids=np.arange(30) + 1000)
    assert [p.name for p in paths] == [f"dynamics_epoch_{e}.jsonl" for e in range(5)]
    dynamics = _read_like_cartography(tmp_path / "training_dynamics")
    assert sorted(dynamics) == list(range(1000, 1030))
    conf = []
    for guid in range(1000, 1030):
        logits = np.array(dynamics[guid]["logits"])
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        conf.append(p[:, dynamics[guid]["gold"]].mean())
    np.testing.assert_allclose(conf, -bl.confidence(td), atol=2e-3)


def test_export_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "training_dynamics").mkdir()
    (tmp_path / "training_dynamics" / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="other files"):
        export_data_maps(TD, LABELS, tmp_path)


def test_cli_on_a_run_folder(tmp_path, capsys):
    run = make_run(tmp_path / "run", n=12, epochs=3)
    main([str(run), "--suffix", ".json"])
    folder = run / "data_maps" / "training_dynamics"
    assert sorted(p.name for p in folder.iterdir()) == [f"dynamics_epoch_{e}.json" for e in range(3)]
    first = json.loads((folder / "dynamics_epoch_0.json").read_text().splitlines()[0])
    assert first["guid"] == 10  # train_indices from metadata.pth
    assert "wrote 3 epoch files" in capsys.readouterr().out


def test_a_shorter_run_replaces_a_longer_runs_export(tmp_path):
    """The extra epoch files of a 3-epoch export stayed beside a 2-epoch run's: cartography read 3 epochs."""
    folder = tmp_path / "training_dynamics"
    long_run = np.concatenate([TD, TD[:, :1]], axis=1)  # 3 epochs
    export_data_maps(long_run, LABELS, tmp_path, suffix=".json")
    (folder / "dynamics_epoch_9.jsonl").write_text("{}\n")  # the other suffix, of another export
    paths = export_data_maps(TD, LABELS, tmp_path)
    assert sorted(folder.iterdir()) == paths == [folder / f"dynamics_epoch_{e}.jsonl" for e in range(2)]
