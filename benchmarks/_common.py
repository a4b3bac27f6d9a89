"""Shared helpers for the benchmarks: the data, a clean cache, and the tutorial's loop as the baseline."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def dataset_path(name: str) -> Path:
    path = Path(os.environ.get("SIIRTO_DATASETS", SHARED)) / name
    if not path.exists():
        raise SystemExit(f"{path} not found: these benchmarks use ../shared/datasets (set SIIRTO_DATASETS)")
    return path


def fresh_cache() -> Path:
    cache = Path(tempfile.mkdtemp(prefix="siirto-bench-"))
    os.environ["SIIRTO_CACHE"] = str(cache)
    return cache


def tutorial_loop(folder: Path, net) -> tuple[float, int]:
    """The course/tutorial way: torchvision ImageFolder + DataLoader(batch_size=32, num_workers=0) +
    the model in eval mode, fp32, under torch.no_grad. Returns (seconds, images)."""
    from torchvision import datasets, transforms

    pre = net.preprocessing
    tf = transforms.Compose([
        transforms.Resize(pre.resize),
        transforms.CenterCrop(pre.crop),
        transforms.ToTensor(),
        transforms.Normalize(pre.mean, pre.std),
    ])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(folder), tf), batch_size=32, num_workers=0)
    model = net.body.eval()
    start, n = time.perf_counter(), 0
    with torch.no_grad():
        for x, _ in loader:
            model(x)
            n += len(x)
    return time.perf_counter() - start, n


def subset(folder: Path, per_class: int, into: Path) -> Path:
    """Symlink the first ``per_class`` files of each class (same images for every contender)."""
    for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
        (into / cls.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(cls.iterdir())[:per_class]:
            (into / cls.name / f.name).symlink_to(f)
    return into
