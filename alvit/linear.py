"""Linear mode's model: logistic regression on a frozen backbone's cached features.

The head has timm's interface (``forward_features``, ``forward_head``, ``get_classifier``), so
the loop trains and predicts with it through the same :func:`alvit.train.fit` and
:func:`alvit.train.predict` as a whole backbone: the same recipe, early stopping on the same
held-out split, the same MC-dropout passes for BALD (its input dropout, off but for those), and
the features it is fed are the "penultimate features" coreset and BADGE use. Its inputs are
standardised with the pool's mean and spread, fixed once per run, so one learning rate suits
any backbone.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class LinearHead(nn.Module):
    """``[B, D]`` features -> ``[B, K]`` logits: dropout (rate 0 but in MC passes), then one linear layer."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.drop = nn.Dropout(0.0)
        self.fc = nn.Linear(dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.fc(self.drop(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class FeatureInputs:
    """The preprocessing of cached features: to the device as float32, nothing else (they were
    standardised once); the loop's interface for images, without flips (linear mode has none)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __call__(self, features: torch.Tensor, flip_mask: torch.Tensor | None = None) -> torch.Tensor:
        return features.to(self.device, non_blocking=True).float()


def standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both ``[N, D]`` and ``[M, D]`` feature sets centred and scaled by the pool's per-dimension
    mean and standard deviation (a constant dimension is only centred)."""
    train64 = np.asarray(train, dtype=np.float64)
    mean, std = train64.mean(axis=0), train64.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return ((train64 - mean) / std).astype(np.float32), ((np.asarray(test, dtype=np.float64) - mean) / std).astype(
        np.float32
    )
