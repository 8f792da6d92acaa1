"""The paper's name for the detector's code. ``detector_models.train`` trains detectors (STEP 2); every other
``detector_models.<module>`` is ``labeltrace.<module>``, whose code lives once, in the installable package
``labeltrace`` (``pip install .``): the alias keeps the paper's layout (``from detector_models.predict import
get_order``) working from a clone.
"""
import importlib
import sys

_MODULES = ("api", "baselines", "features", "issues", "lstm", "metrics", "predict", "traces")

for _name in _MODULES:
    _module = importlib.import_module(f"labeltrace.{_name}")
    sys.modules[f"{__name__}.{_name}"] = _module
    globals()[_name] = _module
