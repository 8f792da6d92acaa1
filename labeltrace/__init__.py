"""labeltrace: find mislabeled training samples from the traces a classifier leaves while it learns.

    from labeltrace import DynamicsRecorder, FeatureTap, find_label_issues, with_index
    recorder = DynamicsRecorder("runs/mine", labels=train_labels, num_classes=10)
    with FeatureTap(model) as tap:         # the input of the model's last linear layer, per forward call
        ...                                # recorder.update(index, logits, features=tap.batches.pop()) in your
                                           # loop, end_epoch() after each
    recorder.save()
    issues = find_label_issues("runs/mine", return_indices_ranked_by="p_noisy")

Adapters for the Hugging Face ``Trainer`` (``labeltrace.hf``) and Lightning (``labeltrace.lightning``) record
the same run folder without a hand-written loop; ``labeltrace issues RUN_DIR`` ranks a run from the shell.
"""
_HOMES = {"DynamicsRecorder": "recorder", "find_label_issues": "api", "get_label_quality_scores": "api",
          "with_index": "indexed", "FeatureTap": "neighbours"}
__all__ = list(_HOMES)
__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that `import labeltrace.io` (the run-folder helpers every stage uses) does not load torch and pandas.
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"labeltrace.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'labeltrace' has no attribute {name!r}")
