"""Logistic regression on features, its plain-file format, and images as an sklearn transformer."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from siirto.probe import ImageFeatures, LinearProbe, fit_probe

from conftest import TINY, make_imagefolder


def _blobs(n_classes=3, n=60, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([f"c{i}" for i in range(n_classes)], n // n_classes)
    centers = rng.normal(0, 3, (n_classes, dim))
    X = centers[[int(c[1]) for c in y]] + rng.normal(0, 1, (len(y), dim))
    return X.astype(np.float32), list(y)


def test_probe_matches_sklearn_and_survives_save_load(tmp_path):
    X, y = _blobs()
    probe = fit_probe(X, y, {"backbone": "x"}, Cs=(0.1, 1.0), folds=3)
    assert probe.info["C"] in (0.1, 1.0) and probe.info["cv_accuracy"] > 0.9
    reference = LogisticRegression(C=probe.info["C"], max_iter=5000).fit((X - probe.mean) / probe.scale, y)
    np.testing.assert_allclose(probe.predict_proba(X), reference.predict_proba((X - probe.mean) / probe.scale), atol=1e-6)
    probe.save(tmp_path / "m")
    assert not any(f.suffix in (".pkl", ".pickle", ".joblib") for f in (tmp_path / "m").iterdir())
    loaded = LinearProbe.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(X), probe.predict_proba(X))
    assert loaded.classes == ["c0", "c1", "c2"]


def test_binary_probe_probabilities():
    X, y = _blobs(n_classes=2)
    probe = fit_probe(X, y, {}, standardize=False, Cs=(1.0,))
    ref = LogisticRegression(C=1.0, max_iter=5000).fit(X, y)
    np.testing.assert_allclose(probe.predict_proba(X), ref.predict_proba(X), atol=1e-6)


def test_image_features_in_pipeline_and_grid_search(tmp_path):
    data = make_imagefolder(tmp_path / "d", per_class=8)
    paths = sorted(str(p) for p in data.rglob("*.jpg"))
    labels = [p.split("/")[-2] for p in paths]
    pipe = Pipeline([("features", ImageFeatures(TINY, cache=str(tmp_path / "cache"))),
                     ("clf", LogisticRegression(max_iter=2000))])
    search = GridSearchCV(pipe, {"clf__C": [0.1, 10.0]}, cv=2).fit(paths, labels)
    assert search.best_score_ == 1.0  # red vs blue is trivially separable
    assert list(search.predict(paths)) == labels
    direct = ImageFeatures(TINY).fit(paths).transform(paths[:3])
    cached = ImageFeatures(TINY, cache=str(tmp_path / "cache")).transform(paths[:3])
    assert direct.shape == (3, 16)
    np.testing.assert_allclose(direct, cached, atol=1e-5)
