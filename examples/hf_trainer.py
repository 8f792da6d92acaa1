"""The Hugging Face Trainer, recording its training dynamics through a callback, then ranking label issues.

    python examples/hf_trainer.py               # writes runs/example_hf, prints the issues and a ROC-AUC
"""
import tempfile

import torch
from transformers import Trainer, TrainingArguments

from labeltrace import with_index
from labeltrace.hf import DynamicsCallback
from noisy_digits import NUM_CLASSES, mlp, noisy_digits, report


class Classifier(torch.nn.Module):
    """The shape of a Hugging Face classification model: named inputs in, ``loss`` and ``logits`` out."""

    def __init__(self):
        super().__init__()
        self.net = mlp()

    def forward(self, pixel_values, labels=None):
        logits = self.net(pixel_values)
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def train(run_dir="runs/example_hf", *, epochs=30, batch_size=64, lr=0.5):
    images, truth, labels, flipped = noisy_digits()
    train_set = [{"pixel_values": x, "labels": int(y)} for x, y in zip(images, labels)]
    args = TrainingArguments(tempfile.mkdtemp(), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
                             learning_rate=lr, optim="sgd", lr_scheduler_type="constant", weight_decay=0.0,
                             max_grad_norm=0.0, save_strategy="no", report_to=[], use_cpu=True,
                             disable_tqdm=True, logging_strategy="no")
    callback = DynamicsCallback(run_dir, labels=labels, num_classes=NUM_CLASSES, true_labels=truth)
    Trainer(model=Classifier(), args=args, train_dataset=with_index(train_set), callbacks=[callback]).train()
    return flipped


if __name__ == "__main__":
    report("runs/example_hf", train())
