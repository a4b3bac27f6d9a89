"""Saving captured frames: safe labels, unique names, atomic writes, each frame exactly once.

Shared by the capture server (`siirto capture`) and notebook 611, so both refuse the same bad labels
and neither can overwrite a frame or write outside its output folder.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import threading
import time
from collections import Counter
from pathlib import Path

from ..data import IMAGE_EXTENSIONS, BadImage, decode_image
from ..errors import SiirtoError

MAX_FRAME_BYTES = 8 * 1024 * 1024
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")


def check_label(label: str) -> str:
    """A label becomes a folder name: letters, digits, space, ``_ . -``; no path tricks."""
    clean = (label or "").strip()
    if not clean:
        raise SiirtoError("empty label: give each class a name, e.g. rock")
    if "/" in clean or "\\" in clean or clean in (".", "..") or ".." in clean or os.path.isabs(clean):
        raise SiirtoError(f"label {label!r} is not a plain name (no '/', '\\\\', '..' or absolute paths)")
    if not _LABEL.match(clean):
        raise SiirtoError(f"label {label!r} may only use letters, digits, space, '_', '.', '-' (64 characters at most)")
    return clean


def parse_labels(text: str) -> list[str]:
    labels = [check_label(part) for part in text.split(",")]
    if len(set(labels)) != len(labels):
        raise SiirtoError(f"labels repeat: {text!r}")
    if len(labels) > 9:
        raise SiirtoError("at most 9 labels (keys 1-9 choose them)")
    return labels


class FrameSaver:
    """Writes ``out/<label>/<label>_<time>_<n>.jpg``. Thread-safe; never overwrites; atomic."""

    def __init__(self, out: str | Path):
        self.out = Path(out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seen: set[str] = set()  # content hashes of frames saved by this saver

    def recent(self, n: int = 6) -> list[Path]:
        """The last ``n`` frames saved under this folder, newest first (for thumbnails)."""
        frames = [f for f in self.out.glob("*/*.jpg")]
        return sorted(frames, key=lambda f: f.stat().st_mtime_ns, reverse=True)[:n]

    def counts(self, labels: list[str] | None = None) -> dict[str, int]:
        found = Counter()
        for folder in self.out.iterdir():
            if folder.is_dir():
                found[folder.name] = sum(1 for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        return {label: found.get(label, 0) for label in labels} if labels is not None else dict(sorted(found.items()))

    def save(self, data: bytes, label: str) -> Path:
        """Check and store one frame (JPEG kept as is; other formats converted). Raises SiirtoError."""
        label = check_label(label)
        received = hashlib.sha256(data).hexdigest()
        if len(data) > MAX_FRAME_BYTES:
            raise SiirtoError(f"frame of {len(data):,} bytes is over the {MAX_FRAME_BYTES:,}-byte limit")
        try:
            image = decode_image(data)
        except BadImage as exc:
            raise SiirtoError(f"not saved: {exc}") from None
        if not data.startswith(b"\xff\xd8"):  # not a JPEG: store as one, like every other frame
            buf = io.BytesIO()
            image.save(buf, "JPEG", quality=92)
            data = buf.getvalue()
        folder = self.out / label
        if folder.resolve().parent != self.out:  # belt and braces: never outside the output folder
            raise SiirtoError(f"label {label!r} would leave {self.out}")
        folder.mkdir(exist_ok=True)
        with self._lock:
            self._seen.add(received)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            tmp = folder / f".{label}_{stamp}_{os.getpid()}_{threading.get_ident()}.tmp"
            tmp.write_bytes(data)
            n = 0
            while True:  # os.link fails if the name exists: two frames never share a file
                path = folder / f"{label}_{stamp}_{n:03d}.jpg"
                try:
                    os.link(tmp, path)
                    break
                except FileExistsError:
                    n += 1
            tmp.unlink()
        return path

    def save_new(self, image_base64: str, label: str) -> Path | None:
        """For a notebook: save a widget's current frame unless this saver already saved it.

        marimo re-runs the saving cell when *either* the frame or the label changes; without this,
        choosing another label would save the previous frame again under the new label.
        """
        if not image_base64:
            return None
        payload = image_base64.split("base64,", 1)[-1]
        try:
            data = base64.b64decode(payload, validate=True)
        except ValueError:
            raise SiirtoError("the widget's frame is not valid base64") from None
        if hashlib.sha256(data).hexdigest() in self._seen:
            return None
        return self.save(data, label)
