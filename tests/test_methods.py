"""`siirto run --method head|finetune` end to end, predict/evaluate for trained models, export parity."""

from __future__ import annotations

import csv
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from siirto.cli import main
from siirto.export import exportable
from siirto.pipeline import load_model

from conftest import TINY, make_imagefolder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_imagefolder(tmp_path_factory.mktemp("methods") / "data", labels=("red", "blue", "green"), per_class=12)


def _run(data, out, *extra):
    return main(["run", str(data), "--out", str(out), "--backbone", TINY, "--quiet", "--epochs", "3",
                 "--lr", "0.05", *extra])


def test_head_method_trains_on_cached_features(data, tmp_path, capsys):
    assert _run(data, tmp_path / "h", "--method", "head") == 0
    out = capsys.readouterr().out
    assert "frozen parameters (head trained on cached features" in out and "epoch 3:" in out
    m = json.loads((tmp_path / "h" / "metrics.json").read_text())
    assert m["method"] == "head" and m["n_test"] == 6 and m["accuracy"] >= 0.8
    assert (tmp_path / "h" / "history.csv").read_text().startswith("epoch,stage,loss,accuracy")
    assert (tmp_path / "h" / "history.png").exists() and (tmp_path / "h" / "confusion_matrix.png").exists()
    assert set(torch.load(tmp_path / "h" / "model" / "weights.pt", weights_only=True)) == {"head.weight", "head.bias"}


def test_finetune_with_stages_predict_evaluate_and_resume(data, tmp_path, capsys):
    assert _run(data, tmp_path / "f", "--method", "finetune", "--stages", "head:1,3:1,all:1", "--augment") == 0
    out = capsys.readouterr().out
    assert "stage head:1" in out and "stage 3:1: training head + 3" in out and "stage all:1" in out
    m = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert m["method"] == "finetune" and m["trained_blocks"] == ["0", "1", "3"]
    assert main(["predict", str(tmp_path / "f" / "model"), str(data / "green"), "--out", str(tmp_path / "p.csv"),
                 "--quiet"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 12 and all(0 <= float(r["probability"]) <= 1 for r in rows)
    assert main(["evaluate", str(tmp_path / "f" / "model"), str(data), "--out", str(tmp_path / "e"), "--quiet"]) == 0
    again = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert again["test_paths"] == m["test_paths"] and again["accuracy"] == m["accuracy"]
    # A finished run resumed does no more epochs; a different class list is refused clearly.
    assert _run(data, tmp_path / "f", "--method", "finetune", "--stages", "head:1,3:1,all:1", "--augment",
                "--resume") == 0
    assert "resuming after epoch 3 of 3" in capsys.readouterr().out
    other = make_imagefolder(tmp_path / "other", labels=("red", "blue"), per_class=6)
    assert _run(other, tmp_path / "f", "--method", "finetune", "--stages", "head:1,3:1,all:1", "--resume") == 2
    assert "different" in capsys.readouterr().err


def test_unknown_block_is_a_clear_error(data, tmp_path, capsys):
    assert _run(data, tmp_path / "x", "--method", "finetune", "--unfreeze-from", "layer9") == 2
    assert "no block named 'layer9'; choose from: head, all, 0, 1" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["logreg", "finetune"])
def test_onnx_and_torchscript_give_the_same_probabilities(data, tmp_path, method):
    extra = ["--method", method] + (["--unfreeze-from", "3"] if method == "finetune" else [])
    assert _run(data, tmp_path / "r", *extra) == 0
    model = tmp_path / "r" / "model"
    assert main(["export", str(model), "--format", "onnx"]) == 0
    assert main(["export", str(model), "--format", "torchscript"]) == 0
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    network, meta = exportable(model)
    with torch.no_grad():
        expected = network(torch.from_numpy(images)).numpy()
    session = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"image": images})[0], expected, atol=1e-5)
    props = {p.key: p.value for p in onnx.load(str(model / "model.onnx")).metadata_props}
    assert json.loads(props["classes"]) == ["blue", "green", "red"] and json.loads(props["preprocessing"])["crop"] == 32
    files = {"siirto.json": ""}
    scripted = torch.jit.load(str(model / "model.pt"), _extra_files=files)
    with torch.no_grad():
        np.testing.assert_allclose(scripted(torch.from_numpy(images)).numpy(), expected, atol=1e-5)
    assert json.loads(files["siirto.json"])["classes"] == ["blue", "green", "red"]
    if method == "logreg":  # the folded Linear reproduces the probe exactly
        from siirto.extract import make_engine

        probe, net = load_model(model)
        np.testing.assert_allclose(probe.predict_proba(make_engine(net)(images)), expected, atol=1e-5)


def test_resume_refuses_a_checkpoint_from_another_backbone(data, tmp_path, capsys):
    from siirto.backbones import get_spec

    weights = tmp_path / "tiny.pt"
    torch.save(get_spec(TINY).weights["seeded"](), weights)
    assert _run(data, tmp_path / "r", "--method", "head", "--epochs", "1") == 0
    assert _run(data, tmp_path / "r", "--method", "head", "--epochs", "1", "--resume", "--weights", str(weights)) == 2
    err = capsys.readouterr().err
    assert "different identity" in err and "without --resume" in err and "Traceback" not in err


def test_out_of_memory_suggests_a_smaller_batch(monkeypatch):
    from siirto.errors import SiirtoError
    from siirto.train import train_loop

    class Hungry(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def batches(epoch, generator):
        yield torch.zeros(64, 3), torch.zeros(64, dtype=torch.long)

    with pytest.raises(SiirtoError, match="batch of 64 images; try --batch-size 32"):
        train_loop(Hungry(), batches, epochs=1, log=lambda _: None)


@pytest.mark.parametrize("method", ["logreg", "head", "finetune"])
def test_live_predictor_agrees_with_batch_prediction(data, tmp_path, method):
    from siirto.capture.live import Predictor
    from siirto.pipeline import predict

    extra = ["--method", method] + (["--unfreeze-from", "3"] if method == "finetune" else [])
    assert _run(data, tmp_path / "r", *extra) == 0
    frame = sorted((data / "green").glob("*.jpg"))[0]
    live = Predictor(tmp_path / "r" / "model").predict(frame.read_bytes())
    rows, _ = predict(tmp_path / "r" / "model", [frame], progress=False)
    assert live["label"] == rows[0]["label"]
    for label, p in rows[0]["probs"].items():
        assert live["probs"][label] == pytest.approx(p, abs=1e-4)
