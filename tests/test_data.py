"""Layouts, labels, splits, and every kind of bad file."""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from siirto.data import BadImage, decode_image, find_images, train_test_split
from siirto.errors import SiirtoError

from conftest import colour_image, make_imagefolder


def _jpeg(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size (what a decompression bomb looks like from the header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


RGB = colour_image("red", random.Random(0), size=(64, 48))


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (_jpeg(RGB)[:300], "truncated"),
        (b"this is a text file, not a picture\n", "not an image"),
        (_png_header_only(100_000, 100_000), "too large"),
        (_png_header_only(12_000, 9_000), "too large"),
    ],
    ids=["zero-byte", "truncated", "not-an-image", "bomb-2x", "over-limit"],
)
def test_bad_files_are_refused_with_a_reason(data, reason):
    with pytest.raises(BadImage, match=reason):
        decode_image(data)


@pytest.mark.parametrize(
    "make",
    [
        lambda: _png(RGB),  # (saved under a .jpg name below: content decides, not the name)
        lambda: _jpeg(RGB.convert("CMYK")),
        lambda: _jpeg(RGB.convert("L")),
        lambda: _png(RGB.convert("P")),
        lambda: _png(RGB.convert("RGBA")),
        lambda: _png(Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16))),
        lambda: _png(RGB.convert("1")),
    ],
    ids=["png-named-jpg", "cmyk", "grayscale", "palette", "rgba", "16-bit", "1-bit"],
)
def test_unusual_modes_become_rgb(make):
    im = decode_image(make())
    assert im.mode == "RGB" and im.size == (64, 48)


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    assert decode_image(_png(rgba)).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_keeps_its_range():
    arr = np.full((8, 8), 65535, np.uint16)
    arr[0, 0] = 0
    im = decode_image(_png(Image.fromarray(arr)))
    assert im.getpixel((1, 1)) == (255, 255, 255) and im.getpixel((0, 0)) == (0, 0, 0)


def test_jpeg_draft_decodes_at_reduced_size_but_not_below_target():
    big = Image.new("RGB", (1600, 1200), (10, 20, 30))
    im = decode_image(_jpeg(big), draft_size=256)
    assert min(im.size) >= 256 and im.size[0] < 1600


def test_imagefolder_layout(imagefolder):
    ds = find_images(imagefolder)
    assert ds.layout == "imagefolder" and ds.classes == ["blue", "red"] and len(ds.samples) == 20


def test_split_layout(tmp_path):
    make_imagefolder(tmp_path / "d" / "train", per_class=4)
    make_imagefolder(tmp_path / "d" / "val", per_class=2, seed=1)
    ds = find_images(tmp_path / "d")
    assert ds.layout == "splits" and {s.split for s in ds.samples} == {"train", "val"}
    train, test = train_test_split(ds.samples)
    assert len(train) == 8 and len(test) == 4 and all(s.split == "val" for s in test)


def test_kaggle_flat_names(tmp_path):
    rng = random.Random(0)
    for i in range(3):
        colour_image("red", rng).save(tmp_path / f"cat.{i}.jpg")
        colour_image("blue", rng).save(tmp_path / f"dog.{i}.jpg")
    ds = find_images(tmp_path)
    assert ds.layout == "kaggle" and ds.counts() == {"cat": 3, "dog": 3}


def test_unlabelled_flat_folder_is_refused_for_training_but_fine_for_prediction(tmp_path):
    rng = random.Random(0)
    for i in range(3):
        colour_image("red", rng).save(tmp_path / f"{i}.jpg")
    with pytest.raises(SiirtoError, match="without labels"):
        find_images(tmp_path)
    assert find_images(tmp_path, allow_unlabelled=True).layout == "unlabelled"


def test_zip_read_in_place_with_top_folder(tmp_path, imagefolder):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(imagefolder.rglob("*.jpg")):
            z.write(f, "photos/" + f.relative_to(imagefolder).as_posix())
        z.writestr("__MACOSX/photos/._red_00.jpg", b"junk")
    ds = find_images(archive)
    assert ds.layout == "imagefolder" and ds.classes == ["blue", "red"] and len(ds.samples) == 20
    assert decode_image(ds.source.read_bytes(ds.samples[0].path)).mode == "RGB"
    assert ds.source.display(ds.samples[0].path).startswith(str(archive) + "!")


def test_stratified_seeded_split(imagefolder):
    ds = find_images(imagefolder)
    train, test = train_test_split(ds.samples, 0.3, seed=7)
    assert sorted(s.label for s in test) == ["blue"] * 3 + ["red"] * 3
    assert train_test_split(ds.samples, 0.3, seed=7) == (train, test)
    assert train_test_split(ds.samples, 0.3, seed=8)[1] != test
    assert not {s.path for s in train} & {s.path for s in test}


def test_missing_and_mixed_inputs_name_the_path(tmp_path):
    with pytest.raises(SiirtoError, match="no such file"):
        find_images(tmp_path / "nope")
    (tmp_path / "a").mkdir()
    colour_image("red", random.Random(0)).save(tmp_path / "a" / "x.jpg")
    colour_image("red", random.Random(0)).save(tmp_path / "y.jpg")
    with pytest.raises(SiirtoError, match="mixed folder depths"):
        find_images(tmp_path)


def test_group_split_keeps_each_group_on_one_side(tmp_path):
    from siirto.data import Sample, group_of

    # 3 labels x 10 clips x 4 frames: clip-<n>_frame<k>.jpg
    samples = [Sample(f"{lab}/{lab}.clip{c}_frame{k}.jpg", lab) for lab in ("a", "b", "c") for c in range(10) for k in range(4)]
    pattern = r"\.(clip\d+)_"
    assert group_of(samples[0].path, pattern) == "clip0"
    train, test = train_test_split(samples, 0.2, seed=1, group=pattern)
    train_groups = {(s.label, group_of(s.path, pattern)) for s in train}
    test_groups = {(s.label, group_of(s.path, pattern)) for s in test}
    assert not train_groups & test_groups and len(test) == 24 and {s.label for s in test} == {"a", "b", "c"}
    assert train_test_split(samples, 0.2, seed=1, group=pattern) == (train, test)
    with pytest.raises(SiirtoError, match="not a regular expression"):
        train_test_split(samples, 0.2, group="(")
    with pytest.raises(SiirtoError, match="only 1 group"):
        train_test_split(samples, 0.2, group="frame")
