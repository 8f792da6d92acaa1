"""A missing optional dependency (an extra of the package) is a one-line error naming the extra to install, never
a traceback: ``sys.modules[name] = None`` makes ``import name`` fail as if the package were not installed."""
import sys
from pathlib import Path

import numpy as np
import pytest

from labeltrace.issues import label_issue_table

TD = np.array([[[0.2, 0.3, 0.5], [0.1, 0.2, 0.7]], [[0.3, 0.6, 0.1], [0.8, 0.15, 0.05]]], dtype=np.float32)
LABELS = np.array([[4, 7, 1], [2, 0, 9]], dtype=np.int16)


def test_without_the_report_extra_the_table_and_figures_say_which_extra(monkeypatch):
    from labeltrace.errors import UsageError

    from labeltrace.issues import _contact_sheet

    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` raises ImportError, as if not installed
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match=r"^the label-issue table needs pandas: pip install 'labeltrace\[report\]'$"):
        label_issue_table(TD, LABELS, np.array([0.2, 0.9]))
    with pytest.raises(UsageError, match=r"^the label-issue contact sheet needs matplotlib: pip install "
                                         r"'labeltrace\[report\]'$"):
        _contact_sheet([np.zeros((2, 2), np.uint8)], ["a"], Path("unused.png"), title="t")


@pytest.mark.parametrize("module, missing, extra", [("labeltrace.hf", ["transformers"], "hf"),
                                                    ("labeltrace.lightning", ["lightning", "lightning.pytorch",
                                                                              "pytorch_lightning"], "lightning")])
def test_an_adapter_without_its_framework_names_the_extra(monkeypatch, module, missing, extra):
    import importlib

    from labeltrace.errors import UsageError

    for name in missing:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(UsageError, match=rf"^{module} needs \w+: pip install 'labeltrace\[{extra}\]'$"):
        importlib.import_module(module)
