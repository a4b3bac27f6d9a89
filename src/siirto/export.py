"""Export a trained model (either kind) to ONNX or TorchScript.

The exported network takes what a camera or an image library gives: a uint8 batch of shape
(N, crop, crop, 3), already resized and centre-cropped as ``preprocessing`` says; it returns class
probabilities. Class names, preprocessing and the backbone travel inside the file (ONNX metadata
properties; a ``siirto.json`` extra file in TorchScript), so the file alone is enough to use it.
A logistic-regression model is exported as the backbone plus one Linear layer with the
standardisation folded into its weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__
from .probe import LinearProbe
from .train import TransferModel


class WithSoftmax(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).softmax(dim=1)


def probe_as_linear(probe: LinearProbe) -> nn.Linear:
    """softmax(Linear(x)) == probe.predict_proba(x): fold (x - mean) / scale into the weights; the
    binary form (one row, sigmoid) becomes two logits [0, z]."""
    weight = probe.coef / probe.scale
    bias = probe.intercept - (probe.coef * (probe.mean / probe.scale)).sum(axis=1)
    if weight.shape[0] == 1:
        weight, bias = np.vstack([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias])
    linear = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight).float())
        linear.bias.copy_(torch.from_numpy(bias).float())
    return linear


def exportable(model_folder: str | Path, weights_file: str | None = None) -> tuple[nn.Module, dict]:
    """(uint8 images -> probabilities network, metadata) for a saved model of either kind."""
    from .pipeline import load_model

    classifier, net = load_model(model_folder, weights_file, device="cpu")
    if isinstance(classifier, LinearProbe):
        network = TransferModel(net.body, probe_as_linear(classifier), pre=net.preprocessing)
    else:
        network = classifier.model
    meta = {
        "classes": classifier.classes,
        "preprocessing": net.preprocessing.to_dict(),
        "input": f"uint8 (N, {net.preprocessing.crop}, {net.preprocessing.crop}, 3) RGB, resized and centre-cropped",
        "output": "class probabilities (N, classes)",
        "backbone": classifier.identity,
        "method": classifier.info.get("method", "logreg"),
        "siirto": __version__,
    }
    return WithSoftmax(network).eval(), meta


def export(model_folder: str | Path, fmt: str = "onnx", out: str | Path | None = None,
           weights_file: str | None = None) -> Path:
    network, meta = exportable(model_folder, weights_file)
    crop = meta["preprocessing"]["crop"]
    if fmt == "onnx":
        import onnx

        from .extract import export_onnx

        path = Path(out) if out else Path(model_folder) / "model.onnx"
        export_onnx(network, crop, path, output_name="probabilities")
        proto = onnx.load(str(path))
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
        onnx.save(proto, str(path))
        return path
    if fmt == "torchscript":
        path = Path(out) if out else Path(model_folder) / "model.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        import warnings

        example = torch.zeros(1, crop, crop, 3, dtype=torch.uint8)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in torch 2.14; still asked for
            traced = torch.jit.trace(network, example, check_trace=False)
            torch.jit.save(traced, str(path), _extra_files={"siirto.json": json.dumps(meta)})
        return path
    raise ValueError(f"unknown export format {fmt!r}")
