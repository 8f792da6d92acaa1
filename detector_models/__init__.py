"""The paper's name for the detector's code: ``detector_models.<module>`` is ``labeltrace.<module>``.

The code itself lives once, in the installable package ``labeltrace`` (``pip install .``); this alias keeps the
paper's layout (``from detector_models.predict import get_order``) working from a clone.
"""
import importlib
import sys

_MODULES = ("api", "baselines", "export", "features", "issues", "lstm", "metrics", "predict", "relabel", "traces",
            "train")

for _name in _MODULES:
    _module = importlib.import_module(f"labeltrace.{_name}")
    sys.modules[f"{__name__}.{_name}"] = _module
    globals()[_name] = _module
