"""The library's own tests: they import ``labeltrace`` and nothing else of the repository, so that they run
against the installed package from any folder (tests/test_packaging.py runs them so, from outside the clone)."""
import torch

torch.set_num_threads(1)
