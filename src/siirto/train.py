"""Heads, freezing, stages, and a training loop you can read top to bottom.

* ``make_head``: ``linear`` = Linear(d, n); ``mlp`` = Linear(d, h) - ReLU - Dropout(p) - Linear(h, n).
* ``freeze``: ``requires_grad=False`` on everything before a named block (``unfreeze_from="layer4"``) or up
  to and including a named parameter (``freeze_through="layer3.5.bn3.bias"``, the course's form).
* Frozen BatchNorm layers are put back in eval mode whenever the model is set to train: their running
  mean/variance were estimated on ImageNet with large batches; updating them from a few small batches
  of new data would shift every feature the frozen layers feed forward, although none of their weights
  train. ``train_bn=True`` (fastai's default) lets them adapt instead.
* Stages (``"head:3,layer4:2,all:1"``): each stage moves the freezing boundary and gets a new optimizer
  whose parameter groups have discriminative learning rates (``lr`` for the head, ``lr * lr_decay**k``
  for the k-th block below it); parameters that were already training keep their optimizer state,
  newly unfrozen ones start fresh.
* ``train_head_on_features``: when the base is frozen and there is no augmentation, the base computes
  the same features every epoch, so the head trains on the cached features from the feature store
  instead -- the same loop, fed features instead of images; the result is the same head (tested).
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn

from .backbones import Preprocessing
from .data import BadImage, ImageSource, decode_image
from .errors import SiirtoError

# ---------------------------------------------------------------------------------- heads & model


def make_head(kind: str, in_features: int, n_classes: int, hidden: int = 512, dropout: float = 0.5) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_features, n_classes)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))
    raise SiirtoError(f"unknown head {kind!r}: use 'linear' or 'mlp'")


class TransferModel(nn.Module):
    """A pretrained body (head cut off) with a new head: images -> class logits.

    With ``pre`` the model takes uint8 NHWC images (as the feature extractor and exported files do)
    and normalises them itself; without it, normalised float NCHW tensors.

    Inception v3 in training mode also returns its auxiliary logits; ``forward`` then returns
    ``(logits, aux_logits)`` and the loss weighs the auxiliary part 0.4. In eval mode there are none.
    """

    def __init__(self, body: nn.Module, head: nn.Module, train_bn: bool = False, pre: Preprocessing | None = None):
        super().__init__()
        self.body = body
        self.head = head
        self.train_bn = train_bn
        self.takes_uint8 = pre is not None
        if pre is not None:
            std = torch.tensor(pre.std).view(1, 3, 1, 1)
            self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)
            self.register_buffer("shift", -torch.tensor(pre.mean).view(1, 3, 1, 1) / std, persistent=False)
        aux = getattr(body, "AuxLogits", None)
        if aux is not None:  # a new auxiliary classifier for the new classes
            last = head[-1] if isinstance(head, nn.Sequential) else head
            aux.fc = nn.Linear(aux.fc.in_features, last.out_features)

    def forward(self, x: torch.Tensor):
        if self.takes_uint8:
            x = x.permute(0, 3, 1, 2).float() * self.scale + self.shift
        out = self.body(x)
        if isinstance(out, tuple):  # InceptionOutputs(logits=features, aux_logits)
            features, aux = out
            # The auxiliary classifier counts only while it trains; frozen, it is untrained noise.
            if any(p.requires_grad for p in self.body.AuxLogits.parameters()):
                return self.head(features), aux
            return self.head(features)
        return self.head(out)

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
        start = _boundary_index(blocks, unfreeze_from or "head")
        trainable = tuple(f"{b}." for b in blocks[start:])
        for name, p in params:
            p.requires_grad = name.startswith(trainable)
    for p in model.head.parameters():
        p.requires_grad = True
    return [b for b in blocks if any(p.requires_grad for n, p in params if n.startswith(b + "."))]


def _boundary_index(blocks: list[str], boundary: str) -> int:
    if boundary == "all":
        return 0
    if boundary == "head":
        return len(blocks)
    if boundary not in blocks:
        raise SiirtoError(f"no block named {boundary!r}; choose from: head, all, {', '.join(blocks)}")
    return blocks.index(boundary)


def last_block(body: nn.Module, blocks: list[str]) -> str:
    """The default boundary for fine-tuning: the last block holding at least 5% of the body's weights
    (ResNet: layer4; DenseNet: features.denseblock4; EfficientNet-Lite: _conv_head)."""
    total = sum(p.numel() for p in body.parameters())
    for name in reversed(blocks):
        if sum(p.numel() for p in body.get_submodule(name).parameters()) >= 0.05 * total:
            return name
    return "all"


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters()) - trainable


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------- stages


@dataclass
class Stage:
    unfreeze_from: str  # "head", "all", or a block name
    epochs: int
    lr: float | None = None  # None: the run's lr


def parse_stages(text: str) -> list[Stage]:
    """``"head:3,layer4:2,all:1"`` (optionally ``layer4:2:1e-4`` for a stage's own learning rate)."""
    stages = []
    for part in text.split(","):
        bits = part.strip().split(":")
        try:
            stages.append(Stage(bits[0], int(bits[1]), float(bits[2]) if len(bits) > 2 else None))
        except (IndexError, ValueError):
            raise SiirtoError(f"bad stage {part!r}: write BLOCK:EPOCHS[:LR], e.g. head:3,layer4:2,all:1") from None
        if stages[-1].epochs < 1:
            raise SiirtoError(f"stage {part!r} needs at least one epoch")
    return stages


def make_optimizer(model: nn.Module, blocks: list[str], lr: float, lr_decay: float,
                   previous: torch.optim.Optimizer | None = None) -> torch.optim.Optimizer:
    """Adam with one parameter group per trainable block: the head at ``lr``, the block below it at
    ``lr * lr_decay``, the next at ``lr * lr_decay**2``... State carries over for parameters that were
    already being trained; newly unfrozen ones start fresh."""
    groups: list[dict] = []
    if isinstance(model, TransferModel):
        groups.append({"params": [p for p in model.head.parameters() if p.requires_grad], "lr": lr, "name": "head"})
        depth = 0
        for block in reversed(blocks):
            params = [p for p in model.body.get_submodule(block).parameters() if p.requires_grad]
            if params:
                depth += 1
                groups.append({"params": params, "lr": lr * lr_decay**depth, "name": block})
        seen = {id(p) for g in groups for p in g["params"]}
        rest = [p for p in model.body.parameters() if p.requires_grad and id(p) not in seen]
        if rest:  # parameters outside the named blocks (none for the registered backbones)
            groups.append({"params": rest, "lr": lr * lr_decay ** (depth + 1), "name": "other"})
    else:
        groups.append({"params": [p for p in model.parameters() if p.requires_grad], "lr": lr, "name": "all"})
    optimizer = torch.optim.Adam(groups)
    if previous is not None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p in previous.state:
                    optimizer.state[p] = previous.state[p]
    return optimizer


# ------------------------------------------------------------------------------------------- loop


@dataclass
class History:
    rows: list[dict] = field(default_factory=list)
    trained_blocks: list[str] = field(default_factory=list)  # body blocks trainable in some stage

    def add(self, **row) -> None:
        self.rows.append(row)

    def best(self, key: str = "val_accuracy") -> dict | None:
        """The epoch kept: highest ``key``, the later one on ties."""
        rows = [r for r in self.rows if r.get(key) is not None]
        return max(rows, key=lambda r: (r[key], r["epoch"])) if rows else None


def train_loop(
    model: nn.Module,
    batches: Callable[[int, torch.Generator], Iterator[tuple[torch.Tensor, torch.Tensor]]],
    epochs: int = 5,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    validate: Callable[[nn.Module], float] | None = None,
    *,
    stages: list[Stage] | None = None,
    blocks: list[str] | None = None,
    lr_decay: float = 0.5,
    patience: int | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    meta: dict | None = None,
    n_batches: int | None = None,
    progress: bool = False,
    aux_weight: float = 0.4,
) -> History:
    """Train the parameters that require grad, epoch by epoch.

    ``batches(epoch, generator)`` yields (inputs, targets): images through a partly frozen network,
    or cached features into a head. ``validate(model)`` -> validation accuracy, after every epoch; the
    best model by it is kept (and restored at the end), and ``patience`` epochs without improvement
    stop training early. ``stages`` move the freezing boundary on schedule (``model`` must then be a
    TransferModel and ``blocks`` its block names). With ``checkpoint`` (a folder), the state after
    every epoch is saved there, and ``resume=True`` continues from it.
    """
    plan = [stage for stage in (stages or [Stage("", epochs)]) for _ in range(stage.epochs)]
    model.to(device)
    use_amp = str(device).startswith("cuda")
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    loss_fn = nn.CrossEntropyLoss()
    history, best_accuracy, best_state, stale = History(), -1.0, None, 0
    start, saved = 1, None
    folder = Path(checkpoint) if checkpoint is not None else None
    if resume and folder is not None and (folder / "last.pt").exists():
        saved = _load_checkpoint(folder / "last.pt", meta)
        model.load_state_dict(saved["model"])
        history.rows = [dict(r) for r in saved["history"]]
        best_accuracy, stale, start = saved["best_accuracy"], saved["stale"], saved["epoch"] + 1
        if (folder / "best.pt").exists():
            best_state = _load_checkpoint(folder / "best.pt", meta)["model"]
        log(f"resuming after epoch {saved['epoch']} of {len(plan)}")
    optimizer, current = None, None
    for epoch, stage in enumerate(plan, start=1):
        if stage is not current:  # a new stage: move the boundary, new optimizer groups
            if stages:
                trainable = freeze(model, blocks or [], stage.unfreeze_from)
                history.trained_blocks = [b for b in blocks or [] if b in trainable or b in history.trained_blocks]
                n_train, n_frozen = count_parameters(model)
                log(f"stage {stage.unfreeze_from}:{stage.epochs}: training head"
                    + (f" + {', '.join(trainable)}" if trainable else "")
                    + f"; {n_train:,} trainable, {n_frozen:,} frozen parameters")
            optimizer = make_optimizer(model, blocks or [], stage.lr or lr, lr_decay, previous=optimizer)
            current = stage
        if epoch < start:
            continue
        if saved is not None and epoch == start:
            optimizer.load_state_dict(saved["optimizer"])
        torch.manual_seed(seed * 100_003 + epoch)  # dropout and augmentation: repeatable, also after resume
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        started = time.perf_counter()
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        from tqdm import tqdm

        for inputs, targets in tqdm(batches(epoch, generator), total=n_batches, disable=not progress,
                                    leave=False, unit="batch", desc=f"epoch {epoch}"):
            loss_sum, right = _train_step(model, inputs.to(device), targets.to(device), optimizer, loss_fn,
                                          scaler, aux_weight)
            total_loss += loss_sum
            correct += right
            seen += len(targets)
        row = {"epoch": epoch, "stage": stage.unfreeze_from or "-", "loss": total_loss / seen,
               "accuracy": correct / seen, "images_per_second": seen / (time.perf_counter() - started)}
        model.eval()
        if validate is not None:
            row["val_accuracy"] = validate(model)
            # Ties go to the later epoch (small validation sets tie often; training loss is still
            # falling); only a strict improvement resets the early-stopping count.
            stale = 0 if row["val_accuracy"] > best_accuracy else stale + 1
            if row["val_accuracy"] >= best_accuracy:
                best_accuracy = row["val_accuracy"]
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                if folder is not None:
                    _save_checkpoint(folder / "best.pt", {"model": best_state, "meta": meta or {}})
        history.add(**row)
        log(_epoch_line(row))
        if folder is not None:
            _save_checkpoint(folder / "last.pt", {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                "history": history.rows, "best_accuracy": best_accuracy, "stale": stale, "meta": meta or {},
            })
        if patience is not None and validate is not None and stale >= patience:
            log(f"early stop: no better validation accuracy for {patience} epoch(s)")
            break
    if best_state is not None:
        model.load_state_dict(best_state)
        best_epoch = max(r["epoch"] for r in history.rows if r.get("val_accuracy") == best_accuracy)
        log(f"kept the best epoch by validation accuracy: {best_epoch} ({best_accuracy:.3f})")
    return history


def _train_step(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, optimizer, loss_fn,
                scaler=None, aux_weight: float = 0.4) -> tuple[float, int]:
    """One optimisation step, shared by both paths; returns (summed loss, correct predictions)."""
    try:
        with torch.autocast(inputs.device.type, enabled=scaler is not None):
            out = model(inputs)
            logits, aux = out if isinstance(out, tuple) else (out, None)
            loss = loss_fn(logits, targets)
            if aux is not None:
                loss = loss + aux_weight * loss_fn(aux, targets)
        optimizer.zero_grad()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
    except torch.OutOfMemoryError:
        raise SiirtoError(
            f"out of memory on {inputs.device} with a batch of {len(inputs)} images; "
            f"try --batch-size {max(1, len(inputs) // 2)}"
        ) from None
    return loss.item() * len(targets), int((logits.argmax(1) == targets).sum())


def _epoch_line(row: dict) -> str:
    val = f"  val accuracy {row['val_accuracy']:.3f}" if "val_accuracy" in row else ""
    return (f"epoch {row['epoch']}: loss {row['loss']:.4f}  accuracy {row['accuracy']:.3f}{val}"
            f"  {row['images_per_second']:.0f} img/s")


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a kill mid-save leaves the previous checkpoint intact


def _load_checkpoint(path: Path, meta: dict | None) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    theirs, ours = state.get("meta") or {}, meta or {}
    for key in ("identity", "classes", "head"):
        if key in ours and theirs.get(key) != ours[key]:
            raise SiirtoError(
                f"{path}: this checkpoint was made for a different {key} ({theirs.get(key)}), not {ours[key]}; "
                f"train without --resume or into another --out folder"
            )
    return state


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
    **loop_options,
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

    return train_loop(head, batches, epochs, lr, seed, "cpu", log, validate, **loop_options)


# ------------------------------------------------------------------------------------ image batches


def augmented(image: Image.Image, pre: Preprocessing, rng: np.random.Generator,
              scale: tuple[float, float] = (0.35, 1.0)) -> np.ndarray:
    """Random resized crop + horizontal flip (torchvision's recipe), from a seeded generator so a run
    can be repeated and resumed exactly even though images decode in threads."""
    w, h = image.size
    for _ in range(10):
        area = w * h * rng.uniform(*scale)
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * ratio))), int(round(np.sqrt(area / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            break
    else:
        side = min(w, h)
        cw = ch = side
        left, top = (w - side) // 2, (h - side) // 2
    crop = image.resize((pre.crop, pre.crop), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(crop, dtype=np.uint8)


def image_batches(
    source: ImageSource, paths: list[str], targets: list[int], pre: Preprocessing, batch_size: int = 32,
    augment: bool = False, seed: int = 0, workers: int = 2,
) -> Callable[[int, torch.Generator], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """``batches(epoch, generator)`` over image files: shuffled, decoded in threads, uint8 NHWC."""
    from .extract import _bounded_map, prepare

    def load(item):
        index, epoch = item
        image = decode_image(source.read_bytes(paths[index]), draft_size=pre.resize)
        if augment:
            return augmented(image, pre, np.random.default_rng([seed, epoch, index]))
        return prepare(image, pre)

    def batches(epoch: int, generator: torch.Generator):
        order = torch.randperm(len(paths), generator=generator).tolist()
        images, labels = [], []
        for index, array in zip(order, _bounded_map(load, [(i, epoch) for i in order], workers, 2 * batch_size)):
            images.append(array)
            labels.append(targets[index])
            if len(images) == batch_size:
                yield torch.from_numpy(np.stack(images)), torch.tensor(labels)
                images, labels = [], []
        if images:
            yield torch.from_numpy(np.stack(images)), torch.tensor(labels)

    return batches


def predict_images(network: nn.Module, source: ImageSource, paths: list[str], pre: Preprocessing,
                   batch_size: int = 32, device: str = "cpu", workers: int = 2) -> tuple[np.ndarray, list[str], list[dict]]:
    """Class probabilities for image files (uint8-input network). Returns (probs, used paths, skipped)."""
    from .extract import _bounded_map, load_image

    def load(path):
        try:
            return path, load_image(source, path, pre), None
        except (BadImage, OSError) as exc:
            return path, None, str(exc)

    network.eval().to(device)
    probs, used, skipped, batch, names = [], [], [], [], []

    def flush():
        if batch:
            with torch.inference_mode():
                out = network(torch.from_numpy(np.stack(batch)).to(device))
            probs.append(out.softmax(1).float().cpu().numpy())
            used.extend(names)
            batch.clear()
            names.clear()

    for path, array, error in _bounded_map(load, paths, workers, 2 * batch_size):
        if error is not None:
            skipped.append({"path": path, "reason": error})
            continue
        batch.append(array)
        names.append(path)
        if len(batch) == batch_size:
            flush()
    flush()
    return (np.concatenate(probs) if probs else np.zeros((0, 0), np.float32)), used, skipped


# ------------------------------------------------------------------------------------ saved models

TORCH_FORMAT = "siirto.torch/1"


@dataclass
class HeadSpec:
    kind: str = "linear"
    hidden: int = 512
    dropout: float = 0.5


@dataclass
class TrainedModel:
    """A trained TransferModel on disk: ``model.json`` + ``weights.pt`` (a state dict, no pickled code).

    Only the head is stored when the body never trained (it is rebuilt from its pretrained weights);
    otherwise the whole state dict.
    """

    classes: list[str]
    identity: dict  # the backbone's identity (name, weights, preprocessing)
    head: HeadSpec
    trained_blocks: list[str]  # body blocks that were trainable at some point ([] = head only)
    train_bn: bool = False
    info: dict = field(default_factory=dict)

    @property
    def body_trained(self) -> bool:
        return bool(self.trained_blocks) or self.train_bn

    def meta(self) -> dict:
        return {"identity": self.identity, "classes": self.classes, "head": asdict(self.head)}

    def build(self, backbone) -> TransferModel:
        """The network for uint8 NHWC images, with a fresh head."""
        head = make_head(self.head.kind, backbone.feature_dim, len(self.classes), self.head.hidden, self.head.dropout)
        return TransferModel(backbone.body, head, self.train_bn, backbone.preprocessing)

    def save(self, folder: str | Path, model: TransferModel) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = model.state_dict() if self.body_trained else {f"head.{k}": v for k, v in model.head.state_dict().items()}
        _save_checkpoint(folder / "weights.pt", state)
        meta = {"format": TORCH_FORMAT, "classes": self.classes, "identity": self.identity, "head": asdict(self.head),
                "trained_blocks": self.trained_blocks, "train_bn": self.train_bn, "info": self.info}
        (folder / "model.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def read(cls, folder: str | Path) -> "TrainedModel":
        meta = json.loads((Path(folder) / "model.json").read_text())
        if meta.get("format") != TORCH_FORMAT:
            raise SiirtoError(f"{folder}/model.json: format {meta.get('format')!r}, expected {TORCH_FORMAT!r}")
        return cls(meta["classes"], meta["identity"], HeadSpec(**meta["head"]), meta["trained_blocks"],
                   meta.get("train_bn", False), meta.get("info", {}))

    def load(self, folder: str | Path, backbone) -> TransferModel:
        """Rebuild the network on ``backbone`` and load the weights (``weights_only=True``)."""
        model = self.build(backbone)
        path = Path(folder) / "weights.pt"
        state = torch.load(path, map_location="cpu", weights_only=True)
        what = f"{path}: weights do not fit {self.identity['backbone']} with a {self.head.kind} head for {len(self.classes)} classes"
        try:
            result = model.load_state_dict(state, strict=self.body_trained)
        except RuntimeError as exc:  # shape mismatches
            raise SiirtoError(f"{what} ({str(exc).splitlines()[-1].strip()})") from None
        bad = [k for k in result.missing_keys if k.startswith("head.")] + list(result.unexpected_keys)
        if bad:
            raise SiirtoError(f"{what} (e.g. {bad[:3]})")
        return model.eval()
