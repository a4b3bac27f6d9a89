"""Heads and freezing (issue 3, first part): freezing really freezes, boundaries select exactly the
named blocks, and training a head on cached features equals training it through the frozen base."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from siirto.backbones import load_backbone
from siirto.errors import SiirtoError
from siirto.train import (
    TransferModel, count_parameters, freeze, make_head, train_head_on_features, train_loop,
)

from conftest import TINY


@pytest.fixture(scope="module")
def resnet18():
    return load_backbone("resnet18", weights="random")


def _model(net, kind="linear", n=3, train_bn=False):
    torch.manual_seed(0)
    return TransferModel(copy.deepcopy(net.body), make_head(kind, net.feature_dim, n), train_bn=train_bn)


def test_heads():
    assert isinstance(make_head("linear", 16, 3), nn.Linear)
    mlp = make_head("mlp", 16, 3, hidden=8)
    assert [type(m).__name__ for m in mlp] == ["Linear", "ReLU", "Dropout", "Linear"] and mlp[2].p == 0.5
    with pytest.raises(SiirtoError, match="unknown head"):
        make_head("conv", 16, 3)


def test_unfreeze_from_selects_exactly_the_named_blocks(resnet18):
    model = _model(resnet18)
    blocks = resnet18.block_names()
    assert freeze(model, blocks, unfreeze_from="layer4") == ["layer4"]
    for name, p in model.body.named_parameters():
        assert p.requires_grad == name.startswith("layer4."), name
    assert all(p.requires_grad for p in model.head.parameters())
    assert freeze(model, blocks, unfreeze_from="head") == []
    assert count_parameters(model) == (512 * 3 + 3, sum(p.numel() for p in model.body.parameters()))
    assert freeze(model, blocks, unfreeze_from="layer3") == ["layer3", "layer4"]
    assert len(freeze(model, blocks, unfreeze_from="all")) == 6  # conv1 bn1 layer1..4 (the rest have no weights)
    with pytest.raises(SiirtoError, match="choose from"):
        freeze(model, blocks, unfreeze_from="layer5")


def test_freeze_through_a_named_parameter(resnet18):
    model = _model(resnet18)
    freeze(model, resnet18.block_names(), freeze_through="layer3.1.bn2.bias")
    names = [n for n, _ in model.body.named_parameters()]
    cut = names.index("layer3.1.bn2.bias")
    for i, (name, p) in enumerate(model.body.named_parameters()):
        assert p.requires_grad == (i > cut), name
    with pytest.raises(SiirtoError, match="no parameter named"):
        freeze(model, resnet18.block_names(), freeze_through="layer3.9.bn2.bias")


@pytest.mark.parametrize("train_bn", [False, True])
def test_a_step_changes_only_what_is_trainable(resnet18, train_bn):
    model = _model(resnet18, train_bn=train_bn)
    freeze(model, resnet18.block_names(), unfreeze_from="layer4")
    before = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    for name, value in after.items():
        changed = not torch.equal(before[name], value)
        if name.startswith(("head.", "body.layer4.")):
            if name.endswith(("weight", "bias")) and "bn" not in name and "downsample.1" not in name:
                assert changed, name
        elif "running_" in name or "num_batches" in name:
            assert changed == train_bn, name  # frozen BN keeps its ImageNet statistics unless train_bn
        else:
            assert not changed, name


def test_head_on_cached_features_equals_head_through_frozen_base():
    net = load_backbone(TINY)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.normal(0, 1, (24, 3, 32, 32)).astype(np.float32))
    targets = torch.from_numpy(rng.integers(0, 3, 24))
    slow = _model(net)
    freeze(slow, net.block_names(), unfreeze_from="head")
    fast_head = copy.deepcopy(slow.head)
    with torch.no_grad():
        features = slow.body.eval()(images).numpy()

    def batches(epoch, generator):
        order = torch.randperm(len(images), generator=generator)
        for i in range(0, len(order), 8):
            yield images[order[i : i + 8]], targets[order[i : i + 8]]

    def validate(model):  # the same validation for both paths: the best epoch is kept in both
        with torch.no_grad():
            return float((model(images).argmax(1) == targets).float().mean())

    train_loop(slow, batches, epochs=3, lr=0.01, log=lambda _: None, validate=validate)
    history = train_head_on_features(fast_head, features, targets.numpy(), features, targets.numpy(),
                                     epochs=3, lr=0.01, batch_size=8, log=lambda _: None)
    assert [r["epoch"] for r in history.rows] == [1, 2, 3] and 0 <= history.best()["val_accuracy"] <= 1
    for a, b in zip(slow.head.parameters(), fast_head.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(slow(images), fast_head(torch.from_numpy(features)), atol=1e-5, rtol=1e-4)
