"""scikit-learn on features: the logistic-regression probe, and images as an sklearn transformer.

A saved probe is a folder with ``model.json`` (classes, backbone identity, chosen C, CV score) and
``classifier.npz`` (coefficients, intercept, standardisation), loaded with ``allow_pickle=False``:
nothing in it can run code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .errors import SiirtoError

PROBE_FORMAT = "siirto.logreg/1"
DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0)


@dataclass
class LinearProbe:
    """A fitted logistic regression in plain arrays: softmax(((x - mean) / scale) @ coef.T + intercept)."""

    classes: list[str]
    coef: np.ndarray  # (n_classes, dim); one row for two classes (sklearn's binary form)
    intercept: np.ndarray
    mean: np.ndarray  # zeros when not standardised
    scale: np.ndarray  # ones when not standardised
    identity: dict  # backbone, weights, preprocessing
    info: dict = field(default_factory=dict)  # C, cv accuracy, n_train, ...

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, np.float64) - self.mean) / self.scale) @ self.coef.T + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = self.decision_function(X)
        if z.shape[1] == 1:  # binary: sklearn's sigmoid form
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1 - p, p], axis=1)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> list[str]:
        return [self.classes[i] for i in self.predict_proba(X).argmax(axis=1)]

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "classifier.npz", coef=self.coef, intercept=self.intercept, mean=self.mean, scale=self.scale)
        meta = {"format": PROBE_FORMAT, "classes": self.classes, "identity": self.identity, "info": self.info}
        (folder / "model.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "LinearProbe":
        folder = Path(folder)
        meta_path = folder / "model.json"
        if not meta_path.exists():
            raise SiirtoError(f"{folder}: not a siirto model folder (no model.json)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != PROBE_FORMAT:
            raise SiirtoError(f"{meta_path}: format {meta.get('format')!r}, expected {PROBE_FORMAT!r}")
        with np.load(folder / "classifier.npz", allow_pickle=False) as arrays:
            parts = {k: arrays[k] for k in ("coef", "intercept", "mean", "scale")}
        return cls(meta["classes"], identity=meta["identity"], info=meta.get("info", {}), **parts)


def fit_probe(
    X: np.ndarray,
    y: list[str],
    identity: dict,
    Cs: tuple[float, ...] = DEFAULT_CS,
    standardize: bool = True,
    folds: int = 5,
    seed: int = 0,
    groups: list[str] | None = None,
) -> LinearProbe:
    """Logistic regression with C chosen by stratified k-fold CV on the training data only
    (group-aware folds when ``groups`` is given, so near-copies never sit on both sides of a fold)."""
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise SiirtoError(f"need at least two classes to train, got {list(classes)}")
    folds = int(min(folds, counts.min(), len(set(groups)) if groups is not None else folds))
    steps = [("scale", StandardScaler())] if standardize else []
    pipe = Pipeline(steps + [("clf", LogisticRegression(max_iter=5000))])
    if folds >= 2 and len(Cs) > 1:
        splitter = StratifiedGroupKFold if groups is not None else StratifiedKFold
        cv = splitter(folds, shuffle=True, random_state=seed)
        search = GridSearchCV(pipe, {"clf__C": list(Cs)}, cv=cv, n_jobs=1).fit(X, y, groups=groups)
        best, C, cv_acc = search.best_estimator_, search.best_params_["clf__C"], float(search.best_score_)
    else:  # too few images per class for CV: use the middle C and say so
        C = Cs[len(Cs) // 2]
        best, cv_acc = pipe.set_params(clf__C=C).fit(X, y), None
    clf: LogisticRegression = best.named_steps["clf"]
    dim = X.shape[1]
    scaler = best.named_steps.get("scale")
    mean = scaler.mean_ if scaler is not None else np.zeros(dim)
    scale = scaler.scale_ if scaler is not None else np.ones(dim)
    info = {"C": C, "cv_accuracy": cv_acc, "cv_folds": folds if cv_acc is not None else 0, "cv_grouped": groups is not None,
            "standardize": standardize, "n_train": int(len(y))}
    return LinearProbe([str(c) for c in clf.classes_], clf.coef_, clf.intercept_, mean, scale, identity, info)


class ImageFeatures(TransformerMixin, BaseEstimator):
    """Image paths -> backbone features, as an sklearn transformer (usable in Pipeline / GridSearchCV).

    >>> Pipeline([("features", ImageFeatures("resnet50")), ("clf", LogisticRegression())])

    ``fit`` learns nothing (the backbone is pretrained). With ``cache`` set to a folder, features
    go to a feature store there, so the folds of a grid search compute each image once.
    """

    def __init__(self, backbone: str = "efficientnet_lite0", weights: str | None = "default",
                 weights_file: str | None = None, batch_size: int = 32, device: str | None = None,
                 cache: str | None = None):
        self.backbone = backbone
        self.weights = weights
        self.weights_file = weights_file
        self.batch_size = batch_size
        self.device = device
        self.cache = cache

    def fit(self, X, y=None):
        self.n_features_out_ = self._backbone().feature_dim
        return self

    def _backbone(self):
        from .backbones import load_backbone

        return _cached_backbone(load_backbone, self.backbone, self.weights, self.weights_file)

    def transform(self, X) -> np.ndarray:
        from .data import BadImage, dataset_from_paths
        from .extract import extract, features_of_images, load_image
        from .store import FeatureStore

        backbone = self._backbone()
        # Absolute paths as keys, so every fold of a grid search hits the same cache rows.
        dataset = dataset_from_paths(list(X), root=Path("/").resolve())
        paths = [s.path for s in dataset.samples]
        if self.cache is None:
            images = []
            for p in paths:
                try:
                    images.append(load_image(dataset.source, p, backbone.preprocessing))
                except BadImage as exc:
                    raise SiirtoError(f"{dataset.source.display(p)}: {exc}") from None
            return features_of_images(backbone, images, self.device, self.batch_size)
        store = FeatureStore(self.cache, backbone.identity, backbone.feature_dim)
        result = extract(dataset, backbone, store, self.batch_size, self.device, progress=False)
        if result.skipped:
            bad = "; ".join(f"{dataset.source.display(s['path'])}: {s['reason']}" for s in result.skipped[:5])
            raise SiirtoError(f"{len(result.skipped)} image(s) could not be used: {bad}")
        return store.load(paths).features

    def get_feature_names_out(self, input_features=None):
        return np.array([f"f{i}" for i in range(self._backbone().feature_dim)], dtype=object)


_BACKBONES: dict[tuple, object] = {}


def _cached_backbone(loader, name, weights, weights_file):
    """Clones made by GridSearchCV share one loaded network instead of loading it per fold."""
    key = (name, weights, weights_file)
    if key not in _BACKBONES:
        _BACKBONES.clear()
        _BACKBONES[key] = loader(name, weights, weights_file)
    return _BACKBONES[key]
