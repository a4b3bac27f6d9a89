"""The one-line API, built only from the mid-level pieces (data, backbones, store, extract, probe, report).

>>> import siirto
>>> metrics = siirto.run("photos/", out="runs/photos")       # split, extract, fit, evaluate, report
>>> rows = siirto.predict("runs/photos/model", ["new.jpg"])
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from .backbones import DEFAULT_BACKBONE, Backbone, load_backbone
from .data import Dataset, Sample, dataset_from_paths, find_images, group_of, train_test_split
from .errors import SiirtoError
from .extract import ExtractResult, cache_dir, extract, load_image, pick_device
from .probe import DEFAULT_CS, LinearProbe, fit_probe
from .report import (
    catdog_imagenet_baseline, classification_metrics, contact_sheet, kaggle_placement,
    plot_confusion, worst_errors, write_metrics,
)
from .store import FeatureStore, FeatureTable
from .train import TORCH_FORMAT, TrainedModel, count_parameters, predict_images


def extract_dataset(
    data: str | Path | Dataset,
    backbone: Backbone,
    store_root: str | Path | None = None,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = True,
) -> tuple[Dataset, FeatureStore, ExtractResult]:
    """Find the images, make sure the store has their features, and return all three."""
    dataset = data if isinstance(data, Dataset) else find_images(data)
    if store_root is None:
        where = hashlib.sha256(str(Path(dataset.source.root).resolve()).encode()).hexdigest()[:12]
        store_root = cache_dir() / "features" / where
    store = FeatureStore(store_root, backbone.identity, backbone.feature_dim)
    result = extract(dataset, backbone, store, batch_size=batch_size, device=device, progress=progress)
    return dataset, store, result


def backbone_for(identity: dict, weights_file: str | None = None) -> Backbone:
    """Rebuild the backbone a model was trained on, and check it is the same one."""
    weights = identity["weights"]
    if weights.startswith("file:") and weights_file is None:
        raise SiirtoError(f"this model was trained on features from a local weights file ({weights}); pass --weights FILE")
    if weights.startswith("random:"):
        raise SiirtoError("this model was trained on a randomly initialised backbone, which cannot be rebuilt")
    backbone = load_backbone(identity["backbone"], None if weights.startswith("file:") else weights, weights_file)
    if backbone.identity != identity:
        raise SiirtoError(
            f"the backbone rebuilt for this model differs from the one it was trained on "
            f"({backbone.identity} != {identity})"
        )
    return backbone


def split_table(table: FeatureTable, test_size: float, seed: int, group: str | None = None) -> tuple[FeatureTable, FeatureTable]:
    """The one train/test split used by run, fit and evaluate alike: over the *usable* images only,
    so a bad file (or a fixed one) never shifts which images are held out."""
    samples = [Sample(p, lab, sp) for p, lab, sp in zip(table.paths, table.labels, table.splits)]
    train, test = train_test_split(samples, test_size, seed, group)
    return table.select([s.path for s in train]), table.select([s.path for s in test])


def fit(
    features: str | Path, out: str | Path, backbone: str | None = None, test_size: float = 0.2, seed: int = 0,
    Cs: tuple[float, ...] = DEFAULT_CS, standardize: bool = True, group: str | None = None,
) -> tuple[LinearProbe, FeatureTable]:
    """Train a logistic regression on a feature store's training split; returns the probe and the held-out table."""
    store = FeatureStore.open(features, backbone)
    table = store.load()
    if any(label is None for label in table.labels):
        raise SiirtoError(f"{features}: some stored images have no label; fit needs labelled data")
    train_t, test_t = split_table(table, test_size, seed, group)
    return _fit_split(train_t, store.identity, out, Cs, standardize, test_size, seed, group=group), test_t


def _fit_split(train_t: FeatureTable, identity: dict, out, Cs, standardize, test_size, seed, group=None,
               **info) -> LinearProbe:
    if len(set(train_t.labels)) < 2:
        raise SiirtoError(f"need at least two classes with usable images to train, found {sorted(set(train_t.labels))}")
    groups = [group_of(p, group) for p in train_t.paths] if group else None
    probe = fit_probe(train_t.features, list(train_t.labels), identity, Cs, standardize, seed=seed, groups=groups)
    # The training paths go with the model, so any later evaluation can be checked for leakage.
    probe.info.update({"test_size": test_size, "seed": seed, "group": group, "train_paths": list(train_t.paths), **info})
    probe.save(Path(out))
    return probe


def load_model(folder: str | Path, weights_file: str | None = None, device: str | None = None):
    """A saved model of either kind -> (classifier, backbone). The kind is read from model.json."""
    meta_path = Path(folder) / "model.json"
    if not meta_path.exists():
        raise SiirtoError(f"{folder}: not a siirto model folder (no model.json)")
    fmt = json.loads(meta_path.read_text()).get("format")
    if fmt == TORCH_FORMAT:
        spec = TrainedModel.read(folder)
        net = backbone_for(spec.identity, weights_file)
        return TorchClassifier(spec, spec.load(folder, net), net, pick_device(device)), net
    probe = LinearProbe.load(folder)
    return probe, backbone_for(probe.identity, weights_file)


class TorchClassifier:
    """A trained TransferModel seen the way evaluation needs it: classes and probabilities."""

    def __init__(self, spec: TrainedModel, model, backbone: Backbone, device: str = "cpu", batch_size: int = 32):
        self.spec, self.model, self.backbone, self.device, self.batch_size = spec, model, backbone, device, batch_size
        self.classes, self.identity, self.info = spec.classes, spec.identity, spec.info

    def probabilities(self, source, table: FeatureTable) -> np.ndarray:
        if not self.spec.body_trained:  # the body is the pretrained one: its stored features are exact
            with torch.inference_mode():
                return self.model.head.eval()(torch.from_numpy(table.features)).softmax(1).numpy()
        probs, used, skipped = predict_images(self.model, source, table.paths, self.backbone.preprocessing,
                                              self.batch_size, self.device)
        if skipped:  # these decoded during extraction; failing now means the files changed meanwhile
            raise SiirtoError(f"{source.display(skipped[0]['path'])}: {skipped[0]['reason']}")
        return probs


def probabilities(model, source, table: FeatureTable) -> np.ndarray:
    if not table.paths:
        return np.zeros((0, len(model.classes)))
    if isinstance(model, LinearProbe):
        return model.predict_proba(table.features)
    return model.probabilities(source, table)


def evaluate_model(model, backbone: Backbone, dataset: Dataset, test: FeatureTable, out: Path,
                   extra: dict | None = None) -> dict:
    """Score a model of either kind on ``test``; write metrics.json, confusion_matrix.png, worst_errors.png."""
    out.mkdir(parents=True, exist_ok=True)
    unknown = sorted({lab for lab in test.labels if lab not in model.classes})
    if unknown:
        raise SiirtoError(f"test labels {unknown} are not among the model's classes {model.classes}")
    probs = probabilities(model, dataset.source, test)
    predicted = [model.classes[i] for i in probs.argmax(axis=1)] if len(test.paths) else []
    metrics = {
        "backbone": backbone.name,
        "weights": backbone.weights_id,
        "preprocessing": backbone.preprocessing.to_dict(),
        "method": model.info.get("method", "logreg"),
        "n_test": len(test.paths),
        **(extra or {}),
        **classification_metrics(list(test.labels), predicted, model.classes),
    }
    metrics.setdefault("n_train", model.info.get("n_train"))
    for key in ("C", "cv_accuracy", "best_val_accuracy", "best_epoch", "trained_blocks"):
        if key in model.info:
            metrics[key] = model.info[key]
    baseline = None
    if len(test.paths) and backbone.has_imagenet_head:
        baseline = catdog_imagenet_baseline(test.features, backbone.head, list(test.labels))
    if baseline:
        metrics["imagenet_baseline"] = baseline
        metrics["kaggle"] = kaggle_placement(metrics["accuracy"], metrics["n_test"])
    metrics["test_paths"] = list(test.paths)
    worst = worst_errors(test.paths, list(test.labels), probs, model.classes)
    metrics["worst_errors"] = worst
    metrics["files"] = {"confusion_matrix": "confusion_matrix.png", "metrics": "metrics.json"}
    if metrics["n_test"]:
        plot_confusion(metrics["confusion_matrix"], model.classes, out / "confusion_matrix.png",
                       f"{backbone.name} ({metrics['method']})\n"
                       f"accuracy {metrics['accuracy']:.2%} on {metrics['n_test']} test images")
    if contact_sheet(dataset.source, worst, out / "worst_errors.png"):
        metrics["files"]["worst_errors"] = "worst_errors.png"
    write_metrics(metrics, out)
    return metrics


def run(
    data: str | Path,
    out: str | Path,
    backbone: str = DEFAULT_BACKBONE,
    weights: str | None = "default",
    weights_file: str | None = None,
    test_size: float = 0.2,
    seed: int = 0,
    store: str | Path | None = None,
    batch_size: int = 32,
    device: str | None = None,
    Cs: tuple[float, ...] = DEFAULT_CS,
    standardize: bool = True,
    progress: bool = True,
    group: str | None = None,
) -> dict:
    """Feature-based transfer in one call: split, extract, fit a logistic regression, evaluate, report."""
    out = Path(out)
    started = time.perf_counter()
    net = load_backbone(backbone, weights, weights_file)
    dataset, feature_store, extracted = extract_dataset(
        data, net, store if store is not None else out / "features", batch_size, device, progress
    )
    train_t, test_t = split_table(feature_store.load([s.path for s in dataset.samples]), test_size, seed, group)
    probe = _fit_split(train_t, net.identity, out / "model", Cs, standardize, test_size, seed, data=str(data),
                       group=group)
    extra = {
        "data": str(data),
        "layout": dataset.layout,
        "n_train": len(train_t.paths),
        "split": ({"test_size": test_size, "seed": seed, "group": group} if dataset.layout != "splits"
                  else "from the folder layout"),
        "skipped": extracted.skipped,
        "ignored": dataset.ignored,
        "extraction": {"computed": extracted.computed, "cached": extracted.cached, "engine": extracted.engine,
                       "seconds": round(extracted.seconds, 2), "images_per_second": round(extracted.images_per_second, 1)},
    }
    metrics = evaluate_model(probe, net, dataset, test_t, out, extra)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    write_metrics(metrics, out)
    return metrics


def evaluate(
    model: str | Path, data: str | Path, out: str | Path, split: str = "test", store: str | Path | None = None,
    weights_file: str | None = None, batch_size: int = 32, device: str | None = None, progress: bool = True,
) -> dict:
    """Evaluate a saved model on ``data``: its test split (the model's own seed), or ``split="all"``."""
    classifier, net = load_model(model, weights_file, device)
    dataset, feature_store, extracted = extract_dataset(data, net, store, batch_size, device, progress)
    table = feature_store.load([s.path for s in dataset.samples])
    if split != "all":
        _, table = split_table(table, classifier.info.get("test_size", 0.2), classifier.info.get("seed", 0),
                               classifier.info.get("group"))
    extra = {"data": str(data), "split": split, "skipped": extracted.skipped}
    return evaluate_model(classifier, net, dataset, table, Path(out), extra)


def predict(
    model: str | Path, inputs: list[str | Path], store: str | Path | None = None, weights_file: str | None = None,
    batch_size: int = 32, device: str | None = None, progress: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Classify files and/or folders. Returns (rows, skipped); a row has path, label, probability, probs."""
    classifier, net = load_model(model, weights_file, device)
    rows, skipped = [], []
    folders = [Path(p) for p in inputs if Path(p).is_dir() or str(p).endswith(".zip")]
    files = [Path(p) for p in inputs if Path(p) not in folders]
    groups = [find_images(f, allow_unlabelled=True) for f in folders]
    if files:
        groups.append(dataset_from_paths(files))
    for dataset in groups:
        _, feature_store, extracted = extract_dataset(dataset, net, store, batch_size, device, progress)
        table = feature_store.load([s.path for s in dataset.samples])
        skipped += [{**s, "path": dataset.source.display(s["path"])} for s in extracted.skipped]
        probs = probabilities(classifier, dataset.source, table)
        for path, p in zip(table.paths, probs):
            best = int(p.argmax())
            rows.append({"path": dataset.source.display(path), "label": classifier.classes[best],
                         "probability": float(p[best]), "probs": dict(zip(classifier.classes, map(float, p)))})
    return rows, skipped


def train_model(
    data: str | Path,
    out: str | Path,
    method: str = "head",
    backbone: str = DEFAULT_BACKBONE,
    weights: str | None = "default",
    weights_file: str | None = None,
    head: str = "linear",
    hidden: int = 512,
    dropout: float = 0.5,
    epochs: int = 5,
    stages: str | None = None,
    unfreeze_from: str | None = None,
    freeze_through: str | None = None,
    lr: float = 1e-3,
    lr_decay: float = 0.5,
    augment: bool = False,
    train_bn: bool = False,
    patience: int | None = None,
    val_size: float = 0.15,
    test_size: float = 0.2,
    seed: int = 0,
    resume: bool = False,
    store: str | Path | None = None,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = True,
    log=print,
    group: str | None = None,
) -> dict:
    """An attached head (``method="head"``: frozen base) or partial fine-tuning (``"finetune"``), with
    the same split, metrics.json, confusion matrix and worst-errors sheet as ``run``.

    The base's features are extracted (and cached) first either way: they validate every file, give
    the no-training baseline, and -- for a head on a frozen base without augmentation -- are what the
    head trains on (the fast path: the same result as running the frozen base every epoch).
    """
    from .report import write_history
    from .train import (
        HeadSpec, Stage, freeze, image_batches, last_block, parse_stages, seed_everything,
        train_head_on_features, train_loop,
    )

    if method not in ("head", "finetune"):
        raise SiirtoError(f"unknown method {method!r}: use logreg, head or finetune")
    out = Path(out)
    started = time.perf_counter()
    device = pick_device(device)
    net = load_backbone(backbone, weights, weights_file)
    dataset, feature_store, extracted = extract_dataset(
        data, net, store if store is not None else out / "features", batch_size, device, progress
    )
    train_t, test_t = split_table(feature_store.load([s.path for s in dataset.samples]), test_size, seed, group)
    fit_t, val_t = split_table(train_t, val_size, seed, group)
    classes = sorted(set(train_t.labels))
    if len(classes) < 2:
        raise SiirtoError(f"{data}: need at least two classes with usable images, found {classes}")
    index = {c: i for i, c in enumerate(classes)}
    y_fit, y_val = [index[c] for c in fit_t.labels], [index[c] for c in val_t.labels]

    seed_everything(seed)  # the new head's initial weights
    spec = TrainedModel(classes, net.identity, HeadSpec(head, hidden, dropout), [], train_bn)
    model = spec.build(net)
    blocks = net.block_names()
    plan = None
    if method == "head":
        freeze(model, blocks, "head")
    elif freeze_through:
        spec.trained_blocks = freeze(model, blocks, freeze_through=freeze_through)
    else:
        plan = parse_stages(stages) if stages else [Stage(unfreeze_from or last_block(net.body, blocks), epochs)]
    loop = {"patience": patience, "checkpoint": out / "checkpoints", "resume": resume, "meta": spec.meta()}
    fast = method == "head" and not augment and not train_bn
    if plan is None:
        trainable, frozen = count_parameters(model)
        log(f"{trainable:,} trainable, {frozen:,} frozen parameters"
            + (" (head trained on cached features: the frozen base's output)" if fast else ""))
    if fast:
        history = train_head_on_features(model.head, fit_t.features, y_fit, val_t.features, y_val, epochs, lr,
                                         batch_size, seed, log, **loop)
    else:
        val_images = [load_image(dataset.source, p, net.preprocessing) for p in val_t.paths]
        val_inputs, val_targets = torch.from_numpy(np.stack(val_images)) if val_images else None, np.asarray(y_val)

        def validate(m):
            if val_inputs is None:
                return None
            with torch.inference_mode():
                preds = torch.cat([m(val_inputs[i : i + batch_size].to(device)).argmax(1).cpu()
                                   for i in range(0, len(val_inputs), batch_size)])
            return float((preds.numpy() == val_targets).mean())

        batches = image_batches(dataset.source, fit_t.paths, y_fit, net.preprocessing, batch_size, augment, seed)
        history = train_loop(model, batches, epochs, lr, seed, device, log, validate if len(val_t.paths) else None,
                             stages=plan, blocks=blocks, lr_decay=lr_decay, n_batches=-(-len(fit_t.paths) // batch_size),
                             progress=progress, **loop)
        if plan is not None:
            spec.trained_blocks = history.trained_blocks
    best = history.best()
    spec.info = {"method": method, "n_train": len(train_t.paths), "n_fit": len(fit_t.paths), "n_val": len(val_t.paths),
                 "test_size": test_size, "val_size": val_size, "seed": seed, "group": group, "epochs_run": len(history.rows),
                 "best_epoch": best["epoch"] if best else None,
                 "best_val_accuracy": best["val_accuracy"] if best else None,
                 "trained_blocks": spec.trained_blocks, "augment": augment, "lr": lr, "lr_decay": lr_decay,
                 "stages": stages, "train_paths": list(train_t.paths), "data": str(data)}
    spec.save(out / "model", model)
    write_history(history.rows, out)
    classifier = TorchClassifier(spec, model.eval(), net, device, batch_size)
    extra = {
        "data": str(data), "layout": dataset.layout, "n_train": len(train_t.paths),
        "split": {"test_size": test_size, "val_size": val_size, "seed": seed, "group": group},
        "skipped": extracted.skipped, "ignored": dataset.ignored,
        "history": "history.csv",
        "extraction": {"computed": extracted.computed, "cached": extracted.cached, "engine": extracted.engine,
                       "seconds": round(extracted.seconds, 2)},
    }
    metrics = evaluate_model(classifier, net, dataset, test_t, out, extra)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    write_metrics(metrics, out)
    return metrics
