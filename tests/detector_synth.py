"""Moved: the synthetic run writers live in tests/synthetic_run.py. This alias stays only for the imports of
tests/test_detector_train.py and tests/test_sound.py; delete it once those import from tests.synthetic_run."""
from tests.synthetic_run import synth_curves, write_run  # noqa: F401
