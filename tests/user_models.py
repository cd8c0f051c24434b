"""A user's own model, importable as ``tests.user_models:FlatMLP``: it takes flat ``[N, F]``
input, as most users' MLPs do, and knows nothing about kdistill."""

from torch import nn


class FlatMLP(nn.Module):
    def __init__(self, in_features: int = 784, hidden: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, classes)
        )

    def forward(self, x):
        return self.net(x)


def flat_mlp(in_features: int = 784, hidden: int = 64, classes: int = 10) -> FlatMLP:
    return FlatMLP(in_features, hidden, classes)


class NoOnnx(nn.Module):
    """Branches in Python on a tensor's value: a graph cannot hold that choice."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(784, 10)

    def forward(self, x):
        logits = self.linear(x.flatten(1))
        if logits.sum() > 0:
            return logits
        return -logits
