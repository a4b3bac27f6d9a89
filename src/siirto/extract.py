"""Files -> features: read, hash, decode, resize, batch, run the backbone, store.

Why it is fast on a laptop CPU:

* JPEGs are decoded at reduced DCT scale when the target size allows (``Image.draft``).
* Decoding runs in a thread pool (Pillow releases the GIL) while the network runs the previous
  batch; at most a few batches are in flight, so memory stays bounded for any number of images.
* On the CPU the backbone runs in ONNX Runtime (exported once, cached under ``~/.cache/siirto``):
  5-7x faster than eager PyTorch for these networks. Normalisation is part of the exported graph,
  so the input is the uint8 image batch. On CUDA or MPS, PyTorch runs it (channels_last).
* Cached images are recognised by path + content hash and never decoded again; when everything
  is cached the network is not even loaded.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn

from .backbones import Backbone, Preprocessing
from .data import BadImage, Dataset, ImageSource, Sample, decode_image
from .store import FeatureStore

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def prepare(image: Image.Image, pre: Preprocessing) -> np.ndarray:
    """RGB image -> (crop, crop, 3) uint8: shorter side to ``pre.resize``, centre crop ``pre.crop``.

    The same geometry as torchvision's ``Resize(resize) + CenterCrop(crop)``.
    """
    w, h = image.size
    scale = pre.resize / min(w, h)
    size = (max(pre.crop, round(w * scale)), max(pre.crop, round(h * scale)))
    if size != (w, h):
        image = image.resize(size, _RESAMPLE.get(pre.interpolation, Image.Resampling.BILINEAR), reducing_gap=3.0)
    left, top = (size[0] - pre.crop) // 2, (size[1] - pre.crop) // 2
    return np.asarray(image.crop((left, top, left + pre.crop, top + pre.crop)), dtype=np.uint8)


def image_from_bytes(data: bytes, pre: Preprocessing) -> np.ndarray:
    """Encoded file -> the network's uint8 input; raises BadImage."""
    return prepare(decode_image(data, draft_size=pre.resize), pre)


def load_image(source: ImageSource, path: str, pre: Preprocessing) -> np.ndarray:
    """Read, decode and prepare one file; raises BadImage."""
    return image_from_bytes(source.read_bytes(path), pre)


class Normalized(nn.Module):
    """uint8 NHWC batch -> features: the normalisation lives inside the network (and the ONNX file)."""

    def __init__(self, net: nn.Module, pre: Preprocessing):
        super().__init__()
        self.net = net
        std = torch.tensor(pre.std).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("shift", -torch.tensor(pre.mean).view(1, 3, 1, 1) / std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).float() * self.scale + self.shift
        return self.net(x)


# ---------------------------------------------------------------------------------------- engines


def pick_device(device: str | None = None) -> str:
    """CUDA > MPS > CPU unless told otherwise."""
    if device and device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cache_dir() -> Path:
    return Path(os.environ.get("SIIRTO_CACHE", Path.home() / ".cache" / "siirto"))


class TorchEngine:
    def __init__(self, backbone: Backbone, device: str):
        self.device = device
        self.model = Normalized(backbone.body, backbone.preprocessing).eval().to(device)
        if device != "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.name = f"torch-{device}"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(batch).to(self.device)).float().cpu().numpy()


class OnnxEngine:
    """ONNX Runtime on the CPU; the exported file is cached per backbone identity and torch version."""

    def __init__(self, backbone: Backbone, threads: int | None = None):
        import onnxruntime as ort

        key = f"{backbone.name}-{backbone.identity_hash}-torch{torch.__version__.split('+')[0]}"
        path = cache_dir() / "onnx" / f"{key}.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.log_severity_level = 3
        # Idle ORT threads would otherwise spin-wait, taking the cores the decode threads need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for attempt in (1, 2):  # a damaged cached file is exported again, once
            if not path.exists():
                export_onnx(Normalized(backbone.body, backbone.preprocessing).eval(), backbone.preprocessing.crop, path)
            try:
                self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                break
            except Exception:
                path.unlink(missing_ok=True)
                if attempt == 2:
                    raise
        self.input = self.session.get_inputs()[0].name
        self.name = "onnxruntime-cpu"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: batch})[0]


def export_onnx(model: nn.Module, crop: int, path: Path, output_name: str = "features") -> None:
    """Export with a dynamic batch dimension; written to a temporary name, then renamed."""
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    example = torch.zeros(2, crop, crop, 3, dtype=torch.uint8)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), str(tmp), input_names=["image"], output_names=[output_name],
            dynamic_axes={"image": {0: "batch"}, output_name: {0: "batch"}}, opset_version=17, dynamo=False,
        )
    os.replace(tmp, path)


_ENGINES: dict[tuple, Callable] = {}


def make_engine(backbone: Backbone, device: str | None = None, engine: str = "auto") -> Callable[[np.ndarray], np.ndarray]:
    """The fastest correct way to run ``backbone`` here (kept for reuse within the process)."""
    device = pick_device(device)
    key = (backbone.identity_hash, device, engine)
    if key not in _ENGINES:
        _ENGINES.clear()  # one live engine at a time keeps memory bounded
        _ENGINES[key] = _new_engine(backbone, device, engine)
    return _ENGINES[key]


def _new_engine(backbone: Backbone, device: str, engine: str) -> Callable[[np.ndarray], np.ndarray]:
    if device == "cpu" and engine in ("auto", "onnx"):
        try:
            return OnnxEngine(backbone)
        except ImportError:
            if engine == "onnx":
                raise
    return TorchEngine(backbone, device)


# --------------------------------------------------------------------------------------- pipeline


@dataclass
class ExtractResult:
    computed: int = 0
    cached: int = 0
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}, including earlier runs' skips
    seconds: float = 0.0
    engine: str = "none (all cached)"

    @property
    def images_per_second(self) -> float:
        return (self.computed + self.cached) / self.seconds if self.seconds else 0.0


def _bounded_map(fn: Callable, items: Iterable, workers: int, ahead: int) -> Iterator:
    """Like ``executor.map`` but with at most ``ahead`` items in flight (bounded memory)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def extract(
    dataset: Dataset,
    backbone: Backbone,
    store: FeatureStore,
    batch_size: int = 32,
    device: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    engine: str = "auto",
) -> ExtractResult:
    """Compute and store the features of every image in ``dataset`` that the store lacks."""
    start = time.perf_counter()
    known = store.index()
    pre = backbone.preprocessing
    result = ExtractResult()
    runner = None

    def work(sample: Sample):
        try:
            stamp = dataset.source.stamp(sample.path)
            stored_sha, stored_stamp, _ = known.get(sample.path, (None, None, None))
            if stamp == stored_stamp:
                return sample, stored_sha, stamp, "cached", None
            data = dataset.source.read_bytes(sample.path)
        except (OSError, KeyError) as exc:
            return sample, None, None, None, f"cannot read file ({exc})"
        sha = hashlib.blake2b(data, digest_size=16).hexdigest()
        if sha == stored_sha:  # touched, not changed
            return sample, sha, stamp, "cached", None
        try:
            return sample, sha, stamp, image_from_bytes(data, pre), None
        except BadImage as exc:
            return sample, sha, stamp, None, str(exc)

    bar = _progress(len(dataset.samples), progress, f"features ({backbone.name})")
    pending_rows: list[dict] = []
    batch: list[tuple[Sample, str, str, np.ndarray]] = []

    def flush():
        nonlocal runner
        if batch:
            if runner is None:
                runner = make_engine(backbone, device, engine)
                result.engine = getattr(runner, "name", "torch")
            features = runner(np.stack([b[3] for b in batch]))
            for (sample, sha, stamp, _), vector in zip(batch, features):
                pending_rows.append(_row(sample, sha, stamp, None, vector))
            result.computed += len(batch)
        store.append(pending_rows)  # one atomic shard: a kill loses at most this batch
        pending_rows.clear()
        batch.clear()

    workers = workers or min(4, max(2, os.cpu_count() or 1))
    for sample, sha, stamp, value, error in _bounded_map(work, dataset.samples, workers, ahead=2 * batch_size):
        if error is not None:
            result.skipped.append({"path": sample.path, "reason": error})
            if sha is not None:
                pending_rows.append(_row(sample, sha, stamp, error, None))
        elif isinstance(value, str):
            earlier_error = known[sample.path][2]
            if earlier_error is None:
                result.cached += 1
            else:  # skipped in an earlier run, and still the same file: report it again
                result.skipped.append({"path": sample.path, "reason": earlier_error})
        else:
            batch.append((sample, sha, stamp, value))
            if len(batch) >= batch_size:
                flush()
        bar.update(1)
    flush()
    bar.close()
    store.compact()
    result.seconds = time.perf_counter() - start
    return result


def _row(sample: Sample, sha: str, stamp: str, error: str | None, vector) -> dict:
    return {
        "path": sample.path,
        "label": sample.label,
        "split": sample.split,
        "sha": sha,
        "stamp": stamp,
        "error": error,
        "feature": None if vector is None else np.asarray(vector, dtype=np.float32),
    }


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc=desc, disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def features_of_images(
    backbone: Backbone, images: list[np.ndarray], device: str | None = None, batch_size: int = 32
) -> np.ndarray:
    """Prepared uint8 images -> features, without a store (for predict and the sklearn transformer)."""
    runner = make_engine(backbone, device)
    out = [runner(np.stack(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, backbone.feature_dim), np.float32)
