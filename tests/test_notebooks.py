"""The course notebooks run headless as scripts on tiny generated data and produce their outputs.
(611's saving rule is tested without a camera in test_capture.py: it is FrameSaver.save_new.)"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from conftest import colour_image, make_imagefolder

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(notebook: str, *args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(NOTEBOOKS / notebook), *args], capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_610_dogs_vs_cats(tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    rng = random.Random(0)
    for i in range(10):
        colour_image("red", rng).save(train / f"cat.{i}.jpg")
        colour_image("blue", rng).save(train / f"dog.{i}.jpg")
    (train / "dog.99.jpg").write_bytes(b"")  # a bad file is reported, not fatal
    out = tmp_path / "out"
    _run("610_dogs_vs_cats.py", "--data", str(train), "--out", str(out), "--backbone", "efficientnet_lite0")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backbone"] == "efficientnet_lite0" and metrics["layout"] == "kaggle"
    assert metrics["n_train"] + metrics["n_test"] == 20 and metrics["skipped"][0]["path"] == "dog.99.jpg"
    assert "imagenet_baseline" in metrics and metrics["kaggle"].startswith("Kaggle Dogs vs. Cats")
    assert (out / "confusion_matrix.png").exists()


def test_611_runs_without_a_camera(tmp_path):
    _run("611_rps_generator.py", env={"SIIRTO_CAPTURE_ROOT": str(tmp_path)})
    assert (tmp_path / "rps").is_dir() and not list((tmp_path / "rps").rglob("*.jpg"))


def test_612_transfer_learning(tmp_path):
    data = make_imagefolder(tmp_path / "rps", labels=("rock", "paper", "scissors"), per_class=8)
    out = tmp_path / "out"
    _run("612_rps_transfer_learning.py", "--data", str(data), "--out", str(out), "--epochs", "2",
         "--backbone", "efficientnet_lite0")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "head" and set(metrics["per_class"]) == {"rock", "paper", "scissors"}
    for name in ("confusion_matrix.png", "history.png", "history.csv", "model/model.json"):
        assert (out / name).exists(), name


def test_notebooks_pass_marimo_check():
    result = subprocess.run([sys.executable, "-m", "marimo", "check", *map(str, sorted(NOTEBOOKS.glob("*.py")))],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
