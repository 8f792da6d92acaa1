"""``--compile``: the forward passes go through torch.compile and the run writes the same files. The test uses
dynamo's ``eager`` backend (graph capture without code generation), which runs in seconds on a CPU;
``--compile`` alone means inductor, whose first epoch compiles for about a minute on this CPU."""
import numpy as np
import pandas as pd
import pytest

from tests.test_faults import RUN, args_for


@pytest.mark.filterwarnings("ignore")
def test_compiled_run_writes_the_same_files(tmp_path):
    from runner import main

    # float32: bf16 rounds differently once dynamo reorders the casts, and one validation sample may flip.
    main(args_for(tmp_path / "plain", "--precision", "fp32"))
    main(args_for(tmp_path / "compiled", "--precision", "fp32", "--compile", "eager"))
    plain, compiled = tmp_path / "plain" / RUN, tmp_path / "compiled" / RUN
    assert sorted(p.name for p in plain.iterdir()) == sorted(p.name for p in compiled.iterdir())
    with np.load(plain / "training_dynamics.npz") as a, np.load(compiled / "training_dynamics.npz") as b:
        assert a["td"].shape == b["td"].shape and a["td"].dtype == b["td"].dtype
        np.testing.assert_allclose(a["td"].astype(np.float32), b["td"].astype(np.float32), atol=2e-3)
    a, b = pd.read_csv(plain / "train_log.csv"), pd.read_csv(compiled / "train_log.csv")
    assert list(a.columns) == list(b.columns)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-4)
