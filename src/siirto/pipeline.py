"""The one-line API, built only from the mid-level pieces (data, backbones, store, extract, probe, report).

>>> import siirto
>>> metrics = siirto.run("photos/", out="runs/photos")       # split, extract, fit, evaluate, report
>>> rows = siirto.predict("runs/photos/model", ["new.jpg"])
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from .backbones import DEFAULT_BACKBONE, Backbone, load_backbone
from .data import Dataset, Sample, dataset_from_paths, find_images, train_test_split
from .errors import SiirtoError
from .extract import ExtractResult, cache_dir, extract
from .probe import DEFAULT_CS, LinearProbe, fit_probe
from .report import (
    catdog_imagenet_baseline, classification_metrics, contact_sheet, kaggle_placement,
    plot_confusion, worst_errors, write_metrics,
)
from .store import FeatureStore, FeatureTable


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


def split_table(table: FeatureTable, test_size: float, seed: int) -> tuple[FeatureTable, FeatureTable]:
    """The one train/test split used by run, fit and evaluate alike: over the *usable* images only,
    so a bad file (or a fixed one) never shifts which images are held out."""
    samples = [Sample(p, lab, sp) for p, lab, sp in zip(table.paths, table.labels, table.splits)]
    train, test = train_test_split(samples, test_size, seed)
    return table.select([s.path for s in train]), table.select([s.path for s in test])


def fit(
    features: str | Path, out: str | Path, backbone: str | None = None, test_size: float = 0.2, seed: int = 0,
    Cs: tuple[float, ...] = DEFAULT_CS, standardize: bool = True,
) -> tuple[LinearProbe, FeatureTable]:
    """Train a logistic regression on a feature store's training split; returns the probe and the held-out table."""
    store = FeatureStore.open(features, backbone)
    table = store.load()
    if any(label is None for label in table.labels):
        raise SiirtoError(f"{features}: some stored images have no label; fit needs labelled data")
    train_t, test_t = split_table(table, test_size, seed)
    return _fit_split(train_t, store.identity, out, Cs, standardize, test_size, seed), test_t


def _fit_split(train_t: FeatureTable, identity: dict, out, Cs, standardize, test_size, seed, **info) -> LinearProbe:
    if len(set(train_t.labels)) < 2:
        raise SiirtoError(f"need at least two classes with usable images to train, found {sorted(set(train_t.labels))}")
    probe = fit_probe(train_t.features, list(train_t.labels), identity, Cs, standardize, seed=seed)
    # The training paths go with the model, so any later evaluation can be checked for leakage.
    probe.info.update({"test_size": test_size, "seed": seed, "train_paths": list(train_t.paths), **info})
    probe.save(Path(out))
    return probe


def evaluate_probe(
    probe: LinearProbe,
    backbone: Backbone,
    dataset: Dataset,
    test: FeatureTable,
    out: Path,
    extra: dict | None = None,
) -> dict:
    """Score ``probe`` on ``test`` and write metrics.json, confusion_matrix.png, worst_errors.png."""
    out.mkdir(parents=True, exist_ok=True)
    unknown = sorted({lab for lab in test.labels if lab not in probe.classes})
    if unknown:
        raise SiirtoError(f"test labels {unknown} are not among the model's classes {probe.classes}")
    probs = probe.predict_proba(test.features) if len(test.paths) else np.zeros((0, len(probe.classes)))
    predicted = [probe.classes[i] for i in probs.argmax(axis=1)] if len(test.paths) else []
    metrics = {
        "backbone": backbone.name,
        "weights": backbone.weights_id,
        "preprocessing": backbone.preprocessing.to_dict(),
        "method": "logreg",
        "n_test": len(test.paths),
        **(extra or {}),
        **classification_metrics(list(test.labels), predicted, probe.classes),
    }
    metrics.setdefault("n_train", probe.info.get("n_train"))
    metrics["C"] = probe.info.get("C")
    metrics["cv_accuracy"] = probe.info.get("cv_accuracy")
    baseline = None
    if len(test.paths) and backbone.has_imagenet_head:
        baseline = catdog_imagenet_baseline(test.features, backbone.head, list(test.labels))
    if baseline:
        metrics["imagenet_baseline"] = baseline
        metrics["kaggle"] = kaggle_placement(metrics["accuracy"], metrics["n_test"])
    metrics["test_paths"] = list(test.paths)
    worst = worst_errors(test.paths, list(test.labels), probs, probe.classes)
    metrics["worst_errors"] = worst
    metrics["files"] = {"confusion_matrix": "confusion_matrix.png", "metrics": "metrics.json"}
    if metrics["n_test"]:
        plot_confusion(metrics["confusion_matrix"], probe.classes, out / "confusion_matrix.png",
                       f"{backbone.name}\naccuracy {metrics['accuracy']:.2%} on {metrics['n_test']} test images")
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
) -> dict:
    """Feature-based transfer in one call: split, extract, fit a logistic regression, evaluate, report."""
    out = Path(out)
    started = time.perf_counter()
    net = load_backbone(backbone, weights, weights_file)
    dataset, feature_store, extracted = extract_dataset(
        data, net, store if store is not None else out / "features", batch_size, device, progress
    )
    train_t, test_t = split_table(feature_store.load([s.path for s in dataset.samples]), test_size, seed)
    probe = _fit_split(train_t, net.identity, out / "model", Cs, standardize, test_size, seed, data=str(data))
    extra = {
        "data": str(data),
        "layout": dataset.layout,
        "n_train": len(train_t.paths),
        "split": {"test_size": test_size, "seed": seed} if dataset.layout != "splits" else "from the folder layout",
        "skipped": extracted.skipped,
        "ignored": dataset.ignored,
        "extraction": {"computed": extracted.computed, "cached": extracted.cached, "engine": extracted.engine,
                       "seconds": round(extracted.seconds, 2), "images_per_second": round(extracted.images_per_second, 1)},
    }
    metrics = evaluate_probe(probe, net, dataset, test_t, out, extra)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    write_metrics(metrics, out)
    return metrics


def evaluate(
    model: str | Path, data: str | Path, out: str | Path, split: str = "test", store: str | Path | None = None,
    weights_file: str | None = None, batch_size: int = 32, device: str | None = None, progress: bool = True,
) -> dict:
    """Evaluate a saved model on ``data``: its test split (the model's own seed), or ``split="all"``."""
    probe = LinearProbe.load(model)
    net = backbone_for(probe.identity, weights_file)
    dataset, feature_store, extracted = extract_dataset(data, net, store, batch_size, device, progress)
    table = feature_store.load([s.path for s in dataset.samples])
    if split != "all":
        _, table = split_table(table, probe.info.get("test_size", 0.2), probe.info.get("seed", 0))
    extra = {"data": str(data), "split": split, "skipped": extracted.skipped}
    return evaluate_probe(probe, net, dataset, table, Path(out), extra)


def predict(
    model: str | Path, inputs: list[str | Path], store: str | Path | None = None, weights_file: str | None = None,
    batch_size: int = 32, device: str | None = None, progress: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Classify files and/or folders. Returns (rows, skipped); a row has path, label, probability, probs."""
    probe = LinearProbe.load(model)
    net = backbone_for(probe.identity, weights_file)
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
        probs = probe.predict_proba(table.features) if table.paths else np.zeros((0, len(probe.classes)))
        for path, p in zip(table.paths, probs):
            best = int(p.argmax())
            rows.append({"path": dataset.source.display(path), "label": probe.classes[best],
                         "probability": float(p[best]), "probs": dict(zip(probe.classes, map(float, p)))})
    return rows, skipped
