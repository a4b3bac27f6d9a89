"""Heads, freezing, and a training loop you can read top to bottom (issue 3, first part).

* ``make_head``: ``linear`` = Linear(d, n); ``mlp`` = Linear(d, h) - ReLU - Dropout(p) - Linear(h, n).
* ``freeze``: ``requires_grad=False`` on everything before a named block (``unfreeze_from="layer4"``) or up
  to and including a named parameter (``freeze_through="layer3.5.bn3.bias"``, the course's form).
* Frozen BatchNorm layers are put back in eval mode whenever the model is set to train: their running
  mean/variance were estimated on ImageNet with large batches; updating them from a few small batches
  of new data would shift every feature the frozen layers feed forward, although none of their weights
  train. ``train_bn=True`` (fastai's default) lets them adapt instead.
* ``train_head_on_features``: when the base is frozen and there is no augmentation, the base computes
  the same features every epoch, so the head trains on the cached features from the feature store
  instead; the result is the same head (tested), minus all the convolutions.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .errors import SiirtoError


def make_head(kind: str, in_features: int, n_classes: int, hidden: int = 512, dropout: float = 0.5) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_features, n_classes)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))
    raise SiirtoError(f"unknown head {kind!r}: use 'linear' or 'mlp'")


class TransferModel(nn.Module):
    """A pretrained body (head cut off) with a new head: images -> class logits."""

    def __init__(self, body: nn.Module, head: nn.Module, train_bn: bool = False):
        super().__init__()
        self.body = body
        self.head = head
        self.train_bn = train_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def train(self, mode: bool = True) -> "TransferModel":
        super().train(mode)
        if mode and not self.train_bn:
            for module in self.body.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                    p.requires_grad for p in module.parameters()
                ):
                    module.eval()
        return self


def freeze(
    model: TransferModel,
    blocks: list[str],
    unfreeze_from: str | None = None,
    freeze_through: str | None = None,
) -> list[str]:
    """Freeze the body up to a boundary; returns the names of the blocks left trainable.

    ``unfreeze_from``: a block name from ``blocks`` (``"head"`` = train only the head, ``"all"`` =
    train everything). ``freeze_through``: a parameter name; it and every parameter before it freeze.
    """
    params = list(model.body.named_parameters())
    if freeze_through is not None:
        names = [n for n, _ in params]
        if freeze_through not in names:
            close = [n for n in names if n.split(".")[0] == freeze_through.split(".")[0]][:5]
            raise SiirtoError(f"no parameter named {freeze_through!r} in the body" + (f"; e.g. {close}" if close else ""))
        cut = names.index(freeze_through) + 1
        for i, (_, p) in enumerate(params):
            p.requires_grad = i >= cut
    else:
        boundary = unfreeze_from or "head"
        if boundary == "all":
            start = 0
        elif boundary == "head":
            start = len(blocks)
        elif boundary in blocks:
            start = blocks.index(boundary)
        else:
            raise SiirtoError(f"no block named {boundary!r}; choose from: head, all, {', '.join(blocks)}")
        trainable = tuple(f"{b}." for b in blocks[start:])
        for name, p in params:
            p.requires_grad = name.startswith(trainable)
    for p in model.head.parameters():
        p.requires_grad = True
    return [b for b in blocks if any(p.requires_grad for n, p in params if n.startswith(b + "."))]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters()) - trainable


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class History:
    rows: list[dict] = field(default_factory=list)

    def add(self, **row) -> None:
        self.rows.append(row)

    def best(self, key: str = "val_accuracy") -> dict | None:
        rows = [r for r in self.rows if r.get(key) is not None]
        return max(rows, key=lambda r: r[key]) if rows else None


def train_head_on_features(
    head: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    log=print,
) -> History:
    """The fast path: the same loop, fed the stored features (the frozen base's output) instead of
    images, in the same order and batches."""
    features, targets = torch.from_numpy(np.asarray(X, np.float32)), torch.from_numpy(np.asarray(y, np.int64))

    def batches(epoch, generator):
        order = torch.randperm(len(features), generator=generator)
        for i in range(0, len(order), batch_size):
            yield features[order[i : i + batch_size]], targets[order[i : i + batch_size]]

    validate = None
    if X_val is not None and len(X_val):
        val_features = torch.from_numpy(np.asarray(X_val, np.float32))

        def validate(model):
            with torch.no_grad():
                return float((model(val_features).argmax(1).numpy() == np.asarray(y_val)).mean())

    return train_loop(head, batches, epochs, lr, seed, "cpu", log, validate)


def train_loop(
    model: nn.Module,
    batches,
    epochs: int = 5,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    log=print,
    validate=None,
) -> History:
    """Train the parameters that require grad. ``batches(epoch, generator)`` yields (inputs, targets):
    images through a partly frozen network (the course notebook's way), or cached features into a head.
    ``validate(model)`` returns the validation accuracy after each epoch."""
    seed_everything(seed)
    model.to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    history = History()
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for inputs, targets in batches(epoch, generator):
            loss_sum, right = _train_step(model, inputs.to(device), targets.to(device), optimizer, loss_fn)
            total_loss += loss_sum
            correct += right
            seen += len(targets)
        row = {"epoch": epoch, "loss": total_loss / seen, "accuracy": correct / seen,
               "images_per_second": seen / (time.perf_counter() - started)}
        model.eval()
        if validate is not None:
            row["val_accuracy"] = validate(model)
        history.add(**row)
        log(_epoch_line(row))
    return history


def _train_step(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, optimizer, loss_fn) -> tuple[float, int]:
    """One optimisation step, shared by both paths; returns (summed loss, correct predictions)."""
    logits = model(inputs)
    loss = loss_fn(logits, targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item() * len(targets), int((logits.argmax(1) == targets).sum())


def _epoch_line(row: dict) -> str:
    val = f"  val accuracy {row['val_accuracy']:.3f}" if "val_accuracy" in row else ""
    return (f"epoch {row['epoch']}: loss {row['loss']:.4f}  accuracy {row['accuracy']:.3f}{val}"
            f"  {row['images_per_second']:.0f} img/s")
