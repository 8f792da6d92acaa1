"""A Lightning module, recording its training dynamics through a callback, then ranking label issues.

    python examples/lightning_module.py         # writes runs/example_lightning, prints the issues and a ROC-AUC
"""
import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from labeltrace import with_index
from labeltrace.lightning import DynamicsCallback
from noisy_digits import NUM_CLASSES, mlp, noisy_digits, report


class Classifier(L.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.net, self.lr = mlp(), lr

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def train(run_dir="runs/example_lightning", *, epochs=30, batch_size=64, lr=0.5, devices=1, strategy="auto"):
    images, truth, labels, flipped = noisy_digits()
    loader = DataLoader(with_index(TensorDataset(images, torch.tensor(labels))), batch_size=batch_size,
                        shuffle=True)
    callback = DynamicsCallback(run_dir, labels=labels, num_classes=NUM_CLASSES, true_labels=truth)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=devices, strategy=strategy, logger=False,
                        callbacks=[callback],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Classifier(lr), loader)
    return flipped


if __name__ == "__main__":
    report("runs/example_lightning", train())
