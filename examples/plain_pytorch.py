"""A plain PyTorch loop that records its training dynamics, then ranks its label issues.

    python examples/plain_pytorch.py            # writes runs/example_plain, prints the issues and a ROC-AUC
"""
import torch
from torch.utils.data import DataLoader, TensorDataset

from labeltrace import DynamicsRecorder, FeatureTap, with_index
from noisy_digits import NUM_CLASSES, mlp, noisy_digits, report


def train(run_dir="runs/example_plain", *, epochs=30, batch_size=64, lr=0.5):
    images, truth, labels, flipped = noisy_digits()
    loader = DataLoader(with_index(TensorDataset(images, torch.tensor(labels))), batch_size=batch_size,
                        shuffle=True)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    recorder = DynamicsRecorder(run_dir, labels=labels, num_classes=NUM_CLASSES, true_labels=truth)
    with FeatureTap(model) as tap:                          # the input of the model's last linear layer
        for _ in range(epochs):
            for x, y, meta in loader:
                logits = model(x)
                loss = torch.nn.functional.cross_entropy(logits, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                # The line the loop gains: the softmax, and the features of the neighbour agreement.
                recorder.update(meta["sample_index"], logits, features=tap.batches.pop())
            recorder.end_epoch()
    recorder.save()
    return flipped


if __name__ == "__main__":
    report("runs/example_plain", train())
