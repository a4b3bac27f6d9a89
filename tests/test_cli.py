"""Every command end to end on tiny generated data (in-process, so the tiny test backbone is known)."""

from __future__ import annotations

import csv
import json
import random
import zipfile

import pytest

from siirto.cli import main

from conftest import TINY, colour_image, make_imagefolder


@pytest.fixture
def data(tmp_path):
    root = make_imagefolder(tmp_path / "data", labels=("red", "blue", "green"), per_class=10)
    (root / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (root / "blue" / "IMG_0001.heic").write_bytes(b"not readable here")
    return root


def test_extract_fit_evaluate_predict(data, tmp_path, capsys):
    assert main(["extract", str(data), "--out", str(tmp_path / "f"), "--backbone", TINY, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "31 images" in out and "30 computed" in out and "broken.jpg" in out
    assert "ignored 1 file(s) that are not a supported image type (.heic)" in out
    assert main(["fit", str(tmp_path / "f"), "--out", str(tmp_path / "m"), "--test-size", "0.2"]) == 0
    assert "held out" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "m"), str(data), "--out", str(tmp_path / "e"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["n_test"] == 6 and metrics["accuracy"] == 1.0
    assert main(["predict", str(tmp_path / "m"), str(data / "green"), str(data / "red" / "red_00.jpg"),
                 "--out", str(tmp_path / "p.csv"), "--quiet"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 11 and {r["label"] for r in rows} == {"green", "red"}
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)


def test_run_writes_the_report(data, tmp_path, capsys):
    assert main(["run", str(data), "--out", str(tmp_path / "r"), "--backbone", TINY, "--quiet", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "skipped 1 file" in text
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    for key in ("accuracy", "n_train", "n_test", "backbone", "per_class", "skipped"):
        assert key in m
    assert m["n_train"] + m["n_test"] == 30 and m["backbone"] == TINY and m["ignored"] == ["blue/IMG_0001.heic"]
    assert set(m["per_class"]) == {"red", "blue", "green"} and m["skipped"][0]["path"] == "red/broken.jpg"
    assert (tmp_path / "r" / "confusion_matrix.png").stat().st_size > 1000
    assert (tmp_path / "r" / "model" / "model.json").exists()


def test_zip_and_kaggle_names_and_submission(tmp_path, capsys):
    rng = random.Random(0)
    archive = tmp_path / "train.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(8):
            for label, colour in (("cat", "red"), ("dog", "blue")):
                path = tmp_path / f"{label}.{i}.jpg"
                colour_image(colour, rng).save(path)
                z.write(path, f"train/{label}.{i}.jpg")
    test_dir = tmp_path / "test1"
    test_dir.mkdir()
    for i, colour in enumerate(["red", "blue", "blue"], start=1):
        colour_image(colour, rng).save(test_dir / f"{i}.jpg")
    assert main(["run", str(archive), "--out", str(tmp_path / "r"), "--backbone", TINY, "--quiet"]) == 0
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["layout"] == "kaggle" and m["n_test"] == 4 and m["accuracy"] == 1.0
    assert "imagenet_baseline" not in m  # random-weight test backbone: no ImageNet claim
    assert main(["predict", str(tmp_path / "r" / "model"), str(test_dir), "--kaggle", "--out", str(tmp_path / "sub.csv"), "--quiet"]) == 0
    rows = list(csv.reader(open(tmp_path / "sub.csv")))
    assert rows[0] == ["id", "label"] and [r[0] for r in rows[1:]] == ["1", "2", "3"]
    p_dog = [float(r[1]) for r in rows[1:]]
    assert p_dog[0] < 0.5 < p_dog[1] and p_dog[2] > 0.5


def test_inspect_lists_resnet50_children(capsys):
    assert main(["inspect", "resnet50"]) == 0
    out = capsys.readouterr().out
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer4", "avgpool", "fc"):
        assert f"  {name} " in out
    assert "2048-d" in out and "25,557,032" in out and "IMAGENET1K_V2" in out


def test_classify_chelsea_with_real_weights(tmp_path, capsys):
    import skimage.data
    from PIL import Image

    Image.fromarray(skimage.data.chelsea()).save(tmp_path / "chelsea.png")
    (tmp_path / "bad.jpg").write_bytes(b"")
    assert main(["classify", str(tmp_path / "chelsea.png"), str(tmp_path / "bad.jpg")]) == 0
    captured = capsys.readouterr()
    first = captured.out.splitlines()[1]
    assert any(cat in first for cat in ("tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"))
    assert "bad.jpg: skipped: empty file" in captured.err


def test_demo_runs_the_real_pipeline(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--per-class", "12", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet_lite0 (imagenet)" in out and "skipped 2 file(s)" in out
    m = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert m["accuracy"] >= 0.8 and m["n_train"] + m["n_test"] == 36  # + 2 broken files


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--backbone", TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("siirto: error:") and "missing" in err and "Traceback" not in err
    assert main(["fit", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "no feature store" in capsys.readouterr().err


def test_run_fit_and_evaluate_agree_on_the_test_split_when_files_are_bad(tmp_path, capsys):
    """Bad files must not shift the split: fit + evaluate must test on exactly the images run tests on,
    and never on an image the model was trained on."""
    data = make_imagefolder(tmp_path / "data", labels=("red", "blue"), per_class=9)
    for i in range(4):
        (data / "red" / f"a_broken_{i}.jpg").write_bytes(b"")
    assert main(["run", str(data), "--out", str(tmp_path / "r"), "--backbone", TINY, "--quiet", "--seed", "5"]) == 0
    run_m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert main(["extract", str(data), "--out", str(tmp_path / "f"), "--backbone", TINY, "--quiet"]) == 0
    assert main(["fit", str(tmp_path / "f"), "--out", str(tmp_path / "m"), "--seed", "5"]) == 0
    assert main(["evaluate", str(tmp_path / "m"), str(data), "--out", str(tmp_path / "e"),
                 "--store", str(tmp_path / "f"), "--quiet"]) == 0
    eval_m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert (run_m["n_train"], run_m["n_test"]) == (eval_m["n_train"], eval_m["n_test"]) == (14, 4)
    assert run_m["test_paths"] == eval_m["test_paths"]
    trained = set(json.loads((tmp_path / "m" / "model.json").read_text())["info"]["train_paths"])
    assert not trained & set(eval_m["test_paths"])


def test_group_option_reaches_split_and_cv(tmp_path, capsys):
    from siirto.data import group_of

    data = make_imagefolder(tmp_path / "data", labels=("red", "blue"), per_class=10)
    pattern = r"_0(\d)"  # red_03.jpg and blue_03.jpg: group "3"
    assert main(["run", str(data), "--out", str(tmp_path / "r"), "--backbone", TINY, "--quiet", "--group", pattern]) == 0
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    info = json.loads((tmp_path / "r" / "model" / "model.json").read_text())["info"]
    assert m["split"]["group"] == pattern and info["cv_grouped"] is True
    test_groups = {group_of(p, pattern) for p in m["test_paths"]}
    assert test_groups and not test_groups & {group_of(p, pattern) for p in info["train_paths"]}
