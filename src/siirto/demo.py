"""The built-in example: a small labelled image set that siirto draws itself (no third-party photos).

Three classes of pictures -- ``stripes``, ``dots`` and ``checks`` -- with random colours, sizes,
angles, blur and noise, plus two deliberately broken files (an empty one and a truncated JPEG), so
the demo also shows how bad files are skipped and reported.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("stripes", "dots", "checks")


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return tuple(rng.randint(0, 255) for _ in range(3))


def draw(kind: str, rng: random.Random, size: int = 192) -> Image.Image:
    big = size * 2  # draw large, rotate, crop the middle: no empty corners
    fg, bg = _colour(rng), _colour(rng)
    while sum(abs(a - b) for a, b in zip(fg, bg)) < 150:
        fg = _colour(rng)
    im = Image.new("RGB", (big, big), bg)
    d = ImageDraw.Draw(im)
    step = rng.randint(14, 40)
    if kind == "stripes":
        width = rng.randint(3, step // 2 + 3)
        for x in range(0, big, step):
            d.rectangle([x, 0, x + width, big], fill=fg)
    elif kind == "dots":
        r = rng.randint(3, step // 2 - 1)
        for y in range(0, big, step):
            for x in range(0, big, step):
                d.ellipse([x - r, y - r, x + r, y + r], fill=fg)
    else:
        for y in range(0, big, step):
            for x in range(0, big, step):
                if (x // step + y // step) % 2:
                    d.rectangle([x, y, x + step - 1, y + step - 1], fill=fg)
    im = im.rotate(rng.uniform(0, 180), resample=Image.Resampling.BILINEAR)
    off = (big - size) // 2
    im = im.crop((off, off, off + size, off + size)).filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(0, 12), (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(im, np.float64) + noise, 0, 255).astype(np.uint8))


def make_demo_data(folder: str | Path, per_class: int = 40, seed: int = 0, broken: bool = True) -> Path:
    """Write ``folder/<class>/<class>_NNN.jpg``; returns the folder. Deterministic for a seed."""
    folder = Path(folder)
    rng = random.Random(seed)
    for kind in CLASSES:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(kind, rng).save(folder / kind / f"{kind}_{i:03d}.jpg", quality=90)
    if broken:
        (folder / "dots" / "empty.jpg").write_bytes(b"")
        buf = io.BytesIO()
        draw("checks", rng).save(buf, "JPEG")
        (folder / "checks" / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    return folder


