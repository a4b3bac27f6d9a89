"""The registry contract, real offline weights, structure of the big torchvision networks, offline errors."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from siirto.backbones import describe, get_spec, imagenet_categories, load_backbone
from siirto.cli import main
from siirto.errors import SiirtoError
from siirto.extract import TorchEngine, make_engine, prepare

from conftest import TINY


def test_real_lite0_weights_see_a_cat():
    import skimage.data as skimage_data

    net = load_backbone("efficientnet_lite0")
    assert net.feature_dim == 1280 and net.weights_id == "imagenet"
    image = prepare(Image.fromarray(skimage_data.chelsea()), net.preprocessing)
    features = make_engine(net)(image[None])
    assert features.shape == (1, 1280)
    with torch.inference_mode():
        probs = net.head(torch.from_numpy(features)).softmax(1)[0]
    top = int(probs.argmax())
    assert 281 <= top <= 285, imagenet_categories()[top]  # tabby / tiger cat / Persian / Siamese / Egyptian cat
    assert float(probs[281:286].sum()) > 0.8


def test_onnx_engine_matches_pytorch():
    net = load_backbone("efficientnet_lite0")
    batch = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    onnx = make_engine(net, "cpu", "onnx")(batch)
    eager = TorchEngine(net, "cpu")(batch)
    assert onnx.shape == eager.shape == (3, 1280)
    np.testing.assert_allclose(onnx, eager, atol=1e-4, rtol=1e-4)


def test_resnet50_structure_and_2048_features():
    net = load_backbone("resnet50", weights="random")
    assert net.block_names() == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    assert net.head_name == "fc" and net.feature_dim == 2048
    with torch.inference_mode():
        assert net.body(torch.zeros(1, 3, 224, 224)).shape == (1, 2048)
    pre = get_spec("resnet50").preprocessing_for("IMAGENET1K_V2")
    assert (pre.resize, pre.crop, pre.interpolation) == (232, 224, "bilinear")
    assert set(get_spec("resnet50").weights) == {"IMAGENET1K_V1", "IMAGENET1K_V2"}
    info = describe(net)
    assert info["params"] == 25_557_032 and info["blocks"][-1] == {"name": "fc", "type": "Linear", "params": 2_049_000}


@pytest.mark.parametrize("name, dim, crop, first_blocks", [
    ("densenet121", 1024, 224, ["features.conv0", "features.norm0"]),
    ("inception_v3", 2048, 299, ["Conv2d_1a_3x3", "Conv2d_2a_3x3"]),
    ("efficientnet_lite0", 1280, 224, ["_conv_stem", "_bn0", "_blocks.0"]),
])
def test_other_registered_backbones(name, dim, crop, first_blocks):
    net = load_backbone(name, weights="random")
    assert net.feature_dim == dim and net.preprocessing.crop == crop
    assert net.block_names()[: len(first_blocks)] == first_blocks


def test_any_torchvision_model_by_name():
    net = load_backbone("mobilenet_v3_small", weights="random")
    assert net.feature_dim == 1024 and "features.0" in net.block_names()
    with pytest.raises(SiirtoError, match="Unknown backbone"):
        get_spec("resnet5O")


def test_offline_download_fails_with_advice(monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(SiirtoError, match="--weights FILE"):
        load_backbone("resnet50", "IMAGENET1K_V1")
    assert main(["classify", "x.jpg", "--backbone", "resnet50"]) == 2
    err = capsys.readouterr().err
    assert "no internet" in err and "Traceback" not in err
    from siirto.backbones import backbone_or_offline_default

    name, note = backbone_or_offline_default("resnet50")  # what notebooks 610/612 do
    assert name == "efficientnet_lite0" and "not available here" in note
    assert backbone_or_offline_default("efficientnet_lite0")[0] == "efficientnet_lite0"


def test_weights_file_loads_and_mismatch_is_explained(tmp_path):
    good = tmp_path / "tiny.pt"
    torch.save(get_spec(TINY).weights["seeded"](), good)
    net = load_backbone(TINY, weights_file=good)
    assert net.weights_id.startswith("file:")
    bad = tmp_path / "bad.pt"
    torch.save({"nonsense.weight": torch.zeros(2)}, bad)
    with pytest.raises(SiirtoError, match="do not fit"):
        load_backbone(TINY, weights_file=bad)
    with pytest.raises(SiirtoError, match="not found"):
        load_backbone(TINY, weights_file=tmp_path / "missing.pt")


def test_random_weights_are_fingerprinted():
    a, b = load_backbone(TINY, weights="random"), load_backbone(TINY, weights="random")
    assert a.weights_id.startswith("random:") and a.weights_id != b.weights_id
