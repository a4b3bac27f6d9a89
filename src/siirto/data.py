"""Find labelled images, check them, decode them to RGB, and split them.

Layouts understood (in a folder or a ``.zip`` read in place):

* ImageFolder: ``root/<label>/<file>``
* with splits: ``root/{train,val,test}/<label>/<file>`` (``valid``/``validation`` count as ``val``)
* Kaggle-style flat folder: ``root/cat.123.jpg`` -> label ``cat`` (the name up to its first dot)
* unlabelled flat folder (``test1/123.jpg``): only for prediction

Every file is checked when it is decoded; a bad one raises :class:`BadImage` with a reason, and the
caller skips and reports it, so one bad file never stops a run.
"""

from __future__ import annotations

import io
import os
import random
import re
import warnings
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import SiirtoError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (about 9500 x 9500)


class BadImage(Exception):
    """A file that cannot be used as an image; ``str()`` is the reason shown to the user."""


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the data root, with "/" separators (also inside a zip)
    label: str | None
    split: str = ""  # "train" / "val" / "test" when the layout says so, else ""


@dataclass
class ImageSource:
    """Where the bytes live: a folder or a zip file, addressed by relative paths."""

    root: Path
    _zip: zipfile.ZipFile | None = field(default=None, repr=False)

    @classmethod
    def open(cls, root: str | Path) -> "ImageSource":
        root = Path(root)
        if not root.exists():
            raise SiirtoError(f"{root}: no such file or folder")
        if root.is_file():
            if not zipfile.is_zipfile(root):
                raise SiirtoError(f"{root}: not a folder and not a .zip file")
            return cls(root, zipfile.ZipFile(root))
        return cls(root)

    def list_files(self) -> list[str]:
        if self._zip is not None:
            names = [n for n in self._zip.namelist() if not n.endswith("/")]
        else:
            names = []
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                prefix = "" if rel == "." else rel + "/"
                names += [prefix + f for f in filenames]
        return sorted(n for n in names if not _hidden(n))

    def read_bytes(self, path: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(path)
        return (self.root / path).read_bytes()

    def stamp(self, path: str) -> str:
        """Cheap change detector, read without opening the file: size + mtime (size + CRC-32 in a zip)."""
        if self._zip is not None:
            info = self._zip.getinfo(path)
            return f"{info.file_size}:{info.CRC:08x}"
        st = (self.root / path).stat()
        return f"{st.st_size}:{st.st_mtime_ns}"

    def display(self, path: str) -> str:
        """A name for messages: the real file, or ``archive.zip!member``."""
        return f"{self.root}!{path}" if self._zip is not None else str(self.root / path)


def _hidden(path: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(path).parts)


@dataclass
class Dataset:
    source: ImageSource
    samples: list[Sample]
    layout: str  # "imagefolder", "splits", "kaggle", "unlabelled"
    ignored: list[str] = field(default_factory=list)  # files that are not images by extension

    @property
    def classes(self) -> list[str]:
        return sorted({s.label for s in self.samples if s.label is not None})

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(s.label for s in self.samples).items()))


def find_images(root: str | Path, allow_unlabelled: bool = False) -> Dataset:
    """Scan ``root`` (folder or zip) and work out the layout and labels."""
    source = ImageSource.open(root)
    files = source.list_files()
    images = [f for f in files if PurePosixPath(f).suffix.lower() in IMAGE_EXTENSIONS]
    image_set = set(images)
    ignored = [f for f in files if f not in image_set]
    if not images:
        raise SiirtoError(f"{root}: no image files found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    parts = [PurePosixPath(f).parts for f in images]
    # A zip (or folder) with one top folder around everything: look inside it -- unless that
    # folder is a split of a train/<label>/<file> tree (Kaggle's train.zip holds train/cat.0.jpg).
    strip = 0
    while (
        all(len(p) > strip + 1 for p in parts)
        and len({p[strip] for p in parts}) == 1
        and not (parts[0][strip].lower() in SPLIT_NAMES and all(len(p) == strip + 3 for p in parts))
    ):
        strip += 1
    rel = [p[strip:] for p in parts]
    if all(len(p) == 3 and p[0].lower() in SPLIT_NAMES for p in rel):
        samples = [Sample(f, p[1], SPLIT_NAMES[p[0].lower()]) for f, p in zip(images, rel)]
        layout = "splits"
    elif all(len(p) == 2 for p in rel):
        samples = [Sample(f, p[0]) for f, p in zip(images, rel)]
        layout = "imagefolder"
    elif all(len(p) == 1 for p in rel):
        labels = [_label_from_name(p[0]) for p in rel]
        if all(labels) and len(set(labels)) >= 2:
            samples = [Sample(f, lab) for f, lab in zip(images, labels)]
            layout = "kaggle"
        elif allow_unlabelled:
            samples = [Sample(f, None) for f in images]
            layout = "unlabelled"
        else:
            raise SiirtoError(
                f"{root}: a flat folder of images without labels. Put each class in its own folder "
                f"(root/<label>/<file>) or name files like cat.1.jpg / dog.2.jpg"
            )
    else:
        depths = Counter(len(p) for p in rel)
        raise SiirtoError(
            f"{root}: mixed folder depths {dict(depths)}; expected root/<label>/<file>, "
            f"root/<train|val|test>/<label>/<file>, or a flat folder of <label>.<n>.jpg"
        )
    return Dataset(source, samples, layout, ignored)


def dataset_from_paths(paths: list[str | Path], root: Path | None = None) -> Dataset:
    """Loose image files (e.g. from the command line or an sklearn pipeline) as an unlabelled dataset.

    Paths are kept relative to ``root`` (default: their common folder).
    """
    files = [Path(p).resolve() for p in paths]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SiirtoError(f"no such file: {', '.join(missing[:5])}")
    if root is None:
        root = Path(os.path.commonpath([f.parent for f in files])) if files else Path(".")
    samples = [Sample(f.relative_to(root).as_posix(), None) for f in files]
    return Dataset(ImageSource(root), samples, "files")


def _label_from_name(name: str) -> str | None:
    """``cat.123.jpg`` -> ``cat``; ``123.jpg`` -> None (Kaggle's unlabelled test files)."""
    parts = name.split(".")
    return parts[0] if len(parts) >= 3 and parts[0] and not parts[0].isdigit() else None


def group_of(path: str, pattern: str) -> str:
    """The group a file belongs to: the first capture group (or the match) of ``pattern`` in its name."""
    match = re.search(pattern, PurePosixPath(path).name)
    if match is None:
        return path  # no match: the file is its own group
    return match.group(1) if match.groups() else match.group(0)


def train_test_split(
    samples: list[Sample], test_size: float = 0.2, seed: int = 0, group: str | None = None
) -> tuple[list[Sample], list[Sample]]:
    """Use the layout's own split when it has one; otherwise a stratified, seeded split.

    The layout's ``test`` split is the test set (``val`` when there is no ``test``); the rest trains.
    ``group``: a regular expression on file names; files of one group (frames of one clip, copies
    of one photo) all land on the same side, so the test set holds no near-copies of training
    images. Then the test share is 1/round(1/test_size) (sklearn's StratifiedGroupKFold, one fold).
    """
    splits = {s.split for s in samples}
    if "test" in splits or "val" in splits:
        held = "test" if "test" in splits else "val"
        return [s for s in samples if s.split != held], [s for s in samples if s.split == held]
    if group:
        return _group_split(sorted(samples, key=lambda s: s.path), test_size, seed, group)
    by_label: dict[str | None, list[Sample]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: s.path):
        by_label[s.label].append(s)
    rng = random.Random(seed)
    train, test = [], []
    for label in sorted(by_label, key=str):
        group = by_label[label]
        rng.shuffle(group)
        n_test = round(len(group) * test_size)
        if len(group) >= 2:
            n_test = min(max(n_test, 1), len(group) - 1)
        test += group[:n_test]
        train += group[n_test:]
    return sorted(train, key=lambda s: s.path), sorted(test, key=lambda s: s.path)


def _group_split(samples: list[Sample], test_size: float, seed: int, pattern: str) -> tuple[list[Sample], list[Sample]]:
    from sklearn.model_selection import StratifiedGroupKFold

    try:
        re.compile(pattern)
    except re.error as exc:
        raise SiirtoError(f"--group {pattern!r} is not a regular expression ({exc})") from None
    folds = max(2, round(1 / test_size))
    groups = [group_of(s.path, pattern) for s in samples]
    if len(set(groups)) < folds:
        raise SiirtoError(f"--group {pattern!r} finds only {len(set(groups))} group(s); a split needs at least {folds}")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    train_idx, test_idx = next(splitter.split(samples, [str(s.label) for s in samples], groups))
    return [samples[i] for i in train_idx], [samples[i] for i in test_idx]


# --------------------------------------------------------------------------------------- decoding


def decode_image(data: bytes, draft_size: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Bytes -> an RGB PIL image, or :class:`BadImage` with the reason.

    ``draft_size``: JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) that still leaves
    the shorter side at least this big, which is several times faster than a full decode.
    """
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise BadImage(f"too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise BadImage("not an image (unrecognised format)") from None
    except Exception as exc:
        raise BadImage(f"{_kind(exc, 'unreadable image header')} ({exc.__class__.__name__}: {exc})") from None
    w, h = im.size
    if w * h > max_pixels:
        raise BadImage(f"too large: {w}x{h} = {w * h / 1e6:.0f} Mpixel, over the {max_pixels / 1e6:.0f} Mpixel limit")
    if w < 1 or h < 1:
        raise BadImage(f"empty image ({w}x{h})")
    try:
        if draft_size and im.format == "JPEG" and im.mode in ("RGB", "L", "CMYK", "YCbCr"):
            # Keep the shorter side >= draft_size after the DCT downscale.
            scale = min(w, h) / draft_size
            if scale >= 2:
                im.draft(im.mode, (max(1, int(w / scale)), max(1, int(h / scale))))
        im.load()
    except Exception as exc:
        raise BadImage(f"{_kind(exc, 'corrupt image data')} ({exc.__class__.__name__}: {exc})") from None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:
        pass  # a broken EXIF block is not worth losing the picture over
    return to_rgb(im)


def _kind(exc: Exception, otherwise: str) -> str:
    return "truncated file" if "truncat" in str(exc).lower() else otherwise


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB: transparency onto white, 16-bit scaled down, CMYK converted."""
    if im.mode == "RGB":
        return im
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im).astype(np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if im.mode == "F":
            top = max(float(arr.max()), 1e-12)
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        im = Image.fromarray(arr, "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")
