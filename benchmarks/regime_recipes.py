"""The training recipes of the regimes pool (:mod:`benchmarks.regimes`): small transformers built from a
``transformers`` config (no download) trained by the Hugging Face ``Trainer`` through
:class:`labeltrace.hf.DynamicsCallback`, and an MLP trained by a plain PyTorch loop through
:class:`labeltrace.DynamicsRecorder` + :class:`labeltrace.FeatureTap`. Every run records the neighbour agreement
(k = 20) and its true labels, so its flipped labels are known.

Model sizes (CPU, one thread, a run in ~10-40 s): BERT and ViT with hidden size 64, 2 layers, 2 heads, MLP
width 128-64.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from labeltrace import DynamicsRecorder, FeatureTap, with_index

HIDDEN = 64
NEIGHBOURS = 20


def bert(vocab_size: int, seq_len: int, num_labels: int):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=vocab_size, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=2 * HIDDEN, max_position_embeddings=seq_len, num_labels=num_labels)
    return BertForSequenceClassification(config)


def vit(image_size: int, patch_size: int, num_labels: int):
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=image_size, patch_size=patch_size, num_channels=1, hidden_size=HIDDEN,
                       num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * HIDDEN,
                       num_labels=num_labels)
    return ViTForImageClassification(config)


def backbone(model) -> torch.nn.Module:
    """The model without its head: what a pretrained checkpoint holds and a fine-tuning run starts from."""
    return model.bert if hasattr(model, "bert") else model.vit


def hf_items(inputs: torch.Tensor, labels: np.ndarray, kind: str) -> list[dict]:
    """The ``Trainer``'s items: ``input_ids`` (B, L) for a BERT, ``pixel_values`` (B, 1, H, W) for a ViT."""
    key = "input_ids" if kind == "bert" else "pixel_values"
    return [{key: x, "labels": int(y)} for x, y in zip(inputs, labels)]


def train_hf(model, items: list[dict], *, epochs: int, lr: float, scheduler: str, seed: int,
             run_dir: Path | None = None, labels=None, true_labels=None, num_classes: int = 0,
             batch_size: int = 32) -> None:
    """AdamW (the ``Trainer``'s default, weight decay 0.01), 10% warmup then ``scheduler`` (``linear`` or
    ``cosine``) decay; recorded through the callback into ``run_dir`` when given (pretraining records nothing)."""
    import transformers.trainer
    from transformers import Trainer, TrainingArguments

    from labeltrace.hf import DynamicsCallback

    # From the repository root the project's own ``datasets/`` package answers ``import datasets``; the Trainer
    # looks Hugging Face's up by that name, finds ours and fails on ``datasets.Dataset``. Our items are a list.
    transformers.trainer.is_datasets_available = lambda: False

    steps = epochs * -(-len(items) // batch_size)
    args = TrainingArguments(tempfile.mkdtemp(prefix="regimes_hf_"), num_train_epochs=epochs,
                             per_device_train_batch_size=batch_size, learning_rate=lr, weight_decay=0.01,
                             lr_scheduler_type=scheduler, warmup_steps=max(1, steps // 10), seed=seed,
                             save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
                             logging_strategy="no", dataloader_num_workers=0)
    callbacks = [] if run_dir is None else [DynamicsCallback(run_dir, labels=labels, num_classes=num_classes,
                                                             true_labels=true_labels, neighbours=NEIGHBOURS)]
    Trainer(model=model, args=args, train_dataset=with_index(items), callbacks=callbacks).train()


def mlp(in_features: int, num_classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(in_features, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64),
                               torch.nn.ReLU(), torch.nn.Linear(64, num_classes))


def train_mlp(features: np.ndarray, labels: np.ndarray, true_labels: np.ndarray, *, run_dir: Path,
              num_classes: int, epochs: int, lr: float, seed: int, batch_size: int = 32) -> None:
    """``features`` (N, D) float32: Adam at ``lr``, shuffled batches, recorded every epoch into ``run_dir``."""
    torch.manual_seed(seed)
    data = torch.utils.data.TensorDataset(torch.from_numpy(features), torch.from_numpy(labels))
    loader = torch.utils.data.DataLoader(with_index(data), batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    model = mlp(features.shape[1], num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    recorder = DynamicsRecorder(run_dir, labels=labels, num_classes=num_classes, true_labels=true_labels,
                                neighbours=NEIGHBOURS)
    with FeatureTap(model) as tap:
        for _ in range(epochs):
            for x, y, meta in loader:
                logits = model(x)
                loss = torch.nn.functional.cross_entropy(logits, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                recorder.update(meta["sample_index"], logits, features=tap.batches.pop())
            recorder.end_epoch()
    recorder.save()
