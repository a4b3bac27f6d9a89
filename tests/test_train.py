"""Heads and freezing (issue 3, first part): freezing really freezes, boundaries select exactly the
named blocks, and training a head on cached features equals training it through the frozen base."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
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


# ------------------------------------------------------------------------- stages, resume, saving

from siirto.train import (  # noqa: E402
    HeadSpec, Stage, TrainedModel, augmented, last_block, make_optimizer, parse_stages,
)


def _toy_batches(n=16, size=32, seed=0):
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.normal(0, 1, (n, 3, size, size)).astype(np.float32))
    targets = torch.from_numpy(rng.integers(0, 3, n))

    def batches(epoch, generator):
        order = torch.randperm(n, generator=generator)
        for i in range(0, n, 8):
            yield images[order[i : i + 8]], targets[order[i : i + 8]]

    return batches, images, targets


def test_parse_stages():
    assert parse_stages("head:3,layer4:2,all:1:1e-5") == [Stage("head", 3), Stage("layer4", 2), Stage("all", 1, 1e-5)]
    with pytest.raises(SiirtoError, match="BLOCK:EPOCHS"):
        parse_stages("head3")


def test_stages_change_the_trainable_set_on_schedule(resnet18):
    model = _model(resnet18)
    blocks = resnet18.block_names()
    seen = []

    def batches(epoch, generator):
        seen.append(sorted({n.split(".")[0] for n, p in model.body.named_parameters() if p.requires_grad}))
        yield torch.randn(2, 3, 32, 32), torch.tensor([0, 1])

    logs = []
    train_loop(model, batches, stages=parse_stages("head:2,layer4:1,layer3:1,all:1"), blocks=blocks, log=logs.append)
    assert seen == [[], [], ["layer4"], ["layer3", "layer4"], ["bn1", "conv1", "layer1", "layer2", "layer3", "layer4"]]
    assert any("trainable" in line and "frozen" in line for line in logs)


def test_discriminative_learning_rates_and_carried_state(resnet18):
    model = _model(resnet18)
    blocks = resnet18.block_names()
    freeze(model, blocks, "head")
    first = make_optimizer(model, blocks, 1e-3, 0.5)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    first.step()
    freeze(model, blocks, "layer3")
    second = make_optimizer(model, blocks, 1e-3, 0.5, previous=first)
    lrs = {g["name"]: g["lr"] for g in second.param_groups}
    assert lrs == {"head": 1e-3, "layer4": 5e-4, "layer3": 2.5e-4}
    head_weight = model.head.weight
    assert second.state[head_weight]["step"] == first.state[head_weight]["step"]  # kept
    assert not any(p in second.state for p in model.body.layer4.parameters())  # newly unfrozen: fresh


def test_resume_continues_from_the_saved_epoch(tmp_path):
    net = load_backbone(TINY)
    batches, images, targets = _toy_batches()

    def validate(model):
        with torch.no_grad():
            return float((model(images).argmax(1) == targets).float().mean())

    meta = {"classes": ["a", "b", "c"]}
    full = _model(net)
    train_loop(full, batches, epochs=4, lr=0.01, validate=validate, log=lambda _: None)

    part = _model(net)
    train_loop(part, batches, epochs=2, lr=0.01, validate=validate, checkpoint=tmp_path, meta=meta, log=lambda _: None)
    resumed, logs = _model(net), []
    history = train_loop(resumed, batches, epochs=4, lr=0.01, validate=validate, checkpoint=tmp_path,
                         resume=True, meta=meta, log=logs.append)
    assert logs[0] == "resuming after epoch 2 of 4" and [r["epoch"] for r in history.rows] == [1, 2, 3, 4]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)  # interrupted + resumed == uninterrupted
    with pytest.raises(SiirtoError, match="different classes"):
        train_loop(_model(net), batches, epochs=4, checkpoint=tmp_path, resume=True,
                   meta={"classes": ["x", "y", "z"]}, log=lambda _: None)


def test_early_stopping(tmp_path):
    net = load_backbone(TINY)
    batches, _, _ = _toy_batches()
    logs = []
    history = train_loop(_model(net), batches, epochs=10, validate=lambda m: 0.5, patience=2, log=logs.append)
    assert len(history.rows) == 3 and any("early stop" in line for line in logs)


def test_saved_model_round_trip_and_mismatch(tmp_path):
    net = load_backbone(TINY)
    spec = TrainedModel(["a", "b", "c"], net.identity, HeadSpec("mlp", hidden=8), trained_blocks=["3"])
    model = spec.build(net)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    spec.save(tmp_path / "m", model)
    loaded = TrainedModel.read(tmp_path / "m").load(tmp_path / "m", load_backbone(TINY))
    x = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)  # saved models take images as stored
    torch.testing.assert_close(loaded(x), model.eval()(x))
    wrong = TrainedModel(["a", "b"], net.identity, HeadSpec("mlp", hidden=8), trained_blocks=["3"])
    with pytest.raises(SiirtoError, match="do not fit"):
        wrong.load(tmp_path / "m", load_backbone(TINY))


def test_head_only_models_store_only_the_head(tmp_path):
    net = load_backbone(TINY)
    spec = TrainedModel(["a", "b"], net.identity, HeadSpec(), trained_blocks=[])
    spec.save(tmp_path / "m", spec.build(net))
    state = torch.load(tmp_path / "m" / "weights.pt", weights_only=True)
    assert set(state) == {"head.weight", "head.bias"}


def test_augmentation_is_seeded_and_sized():
    from siirto.backbones import Preprocessing

    pre = Preprocessing(40, 32, (0.5,) * 3, (0.5,) * 3)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8))
    a = augmented(image, pre, np.random.default_rng([1, 2, 3]))
    b = augmented(image, pre, np.random.default_rng([1, 2, 3]))
    c = augmented(image, pre, np.random.default_rng([1, 2, 4]))
    assert a.shape == (32, 32, 3) and np.array_equal(a, b) and not np.array_equal(a, c)


def test_default_finetune_boundary(resnet18):
    assert last_block(resnet18.body, resnet18.block_names()) == "layer4"


def test_inception_aux_logits_in_training_only():
    net = load_backbone("inception_v3", weights="random")
    model = TransferModel(net.body, make_head("linear", net.feature_dim, 3))
    assert model.body.AuxLogits.fc.out_features == 3
    model.train()
    logits, aux = model(torch.randn(2, 3, 299, 299))
    assert logits.shape == aux.shape == (2, 3)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 299, 299)).shape == (1, 3)
    freeze(model, net.block_names(), "Mixed_7c")  # AuxLogits sits below the boundary: frozen, not counted
    model.train()
    assert model(torch.randn(2, 3, 299, 299)).shape == (2, 3)
