"""Shared fixtures: a tiny registered backbone (for mechanisms) and small generated image sets."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from siirto.backbones import BackboneSpec, Preprocessing, register

TINY = "tiny_cnn"


def _build_tiny() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 1000),
    )


def _tiny_weights() -> dict:
    torch.manual_seed(1234)
    return _build_tiny().state_dict()


register(
    BackboneSpec(
        name=TINY,
        build=_build_tiny,
        weights={"seeded": _tiny_weights},
        default_weights="seeded",
        preprocessing={"*": Preprocessing(40, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))},
        description="a tiny CNN for tests",
        imagenet=False,
    )
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SIIRTO_CACHE", str(tmp_path_factory.getbasetemp() / "siirto-cache"))


COLOURS = {"red": (200, 30, 30), "blue": (30, 30, 200), "green": (30, 180, 30)}


def colour_image(label: str, rng: random.Random, size=(48, 40), colour=None) -> Image.Image:
    """A noisy image whose dominant colour is the label: trivially separable from any features."""
    base = np.array(colour or COLOURS[label], np.float64)
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 25, (size[1], size[0], 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def make_imagefolder(root: Path, labels=("red", "blue"), per_class: int = 10, seed: int = 0) -> Path:
    rng = random.Random(seed)
    palette = list(COLOURS.values())
    for n, label in enumerate(labels):  # other names get the colours in order
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            colour = COLOURS.get(label, palette[n % len(palette)])
            colour_image(label, rng, colour=colour).save(root / label / f"{label}_{i:02d}.jpg", quality=92)
    return root


@pytest.fixture
def imagefolder(tmp_path) -> Path:
    return make_imagefolder(tmp_path / "data")
