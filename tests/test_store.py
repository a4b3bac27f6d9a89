"""The feature cache: hits, misses, invalidation, no mixing, and resuming after kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from siirto.backbones import Preprocessing, load_backbone
from siirto.data import find_images
from siirto.extract import extract
from siirto.store import FeatureStore

from conftest import TINY, colour_image, make_imagefolder


def _extract(data: Path, store_root: Path, backbone=None):
    net = backbone or load_backbone(TINY)
    store = FeatureStore(store_root, net.identity, net.feature_dim)
    return store, extract(find_images(data), net, store, batch_size=4, progress=False)


def test_second_run_is_a_pure_cache_hit(imagefolder, tmp_path):
    store, first = _extract(imagefolder, tmp_path / "s")
    assert (first.computed, first.cached) == (20, 0)
    _, again = _extract(imagefolder, tmp_path / "s")
    assert (again.computed, again.cached) == (0, 20)
    assert again.engine.startswith("none")  # the network was never even loaded
    table = store.load()
    assert table.features.shape == (20, 16) and len(list(store.dir.glob("part-*.parquet"))) == 1


def test_changed_and_new_files_are_recomputed_only(imagefolder, tmp_path):
    store, _ = _extract(imagefolder, tmp_path / "s")
    before = store.load().features[store.load().paths.index("red/red_03.jpg")].copy()
    colour_image("blue", random.Random(99)).save(imagefolder / "red" / "red_03.jpg")
    colour_image("red", random.Random(98)).save(imagefolder / "red" / "red_new.jpg")
    _, again = _extract(imagefolder, tmp_path / "s")
    assert (again.computed, again.cached) == (2, 19)
    table = store.load()
    assert len(table.paths) == 21 and len(set(table.paths)) == 21
    assert not np.allclose(table.features[table.paths.index("red/red_03.jpg")], before)


def test_touched_but_unchanged_file_is_not_recomputed(imagefolder, tmp_path):
    _extract(imagefolder, tmp_path / "s")
    os.utime(imagefolder / "red" / "red_01.jpg", ns=(1, 1))  # new stamp, same bytes
    _, again = _extract(imagefolder, tmp_path / "s")
    assert (again.computed, again.cached) == (0, 20)


def test_zip_members_are_cached_too(imagefolder, tmp_path):
    import zipfile

    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(imagefolder.rglob("*.jpg")):
            z.write(f, f.relative_to(imagefolder).as_posix())
    first = _extract(archive, tmp_path / "s")[1]
    again = _extract(archive, tmp_path / "s")[1]
    assert (first.computed, again.computed, again.cached) == (20, 0, 20)


def test_backbones_and_preprocessing_never_mix(imagefolder, tmp_path):
    tiny = load_backbone(TINY)
    _extract(imagefolder, tmp_path / "s", tiny)
    other = load_backbone(TINY)
    other.preprocessing = Preprocessing(48, 40, (0.5,) * 3, (0.25,) * 3)
    store2, second = _extract(imagefolder, tmp_path / "s", other)
    assert second.computed == 20  # different preprocessing: nothing reused
    assert len(list((tmp_path / "s").glob("*/store.json"))) == 2
    with pytest.raises(Exception, match="several feature stores"):
        FeatureStore.open(tmp_path / "s")
    _, third = _extract(imagefolder, tmp_path / "s", tiny)
    assert third.cached == 20  # switching back is a cache hit


def test_bad_files_are_skipped_reported_and_remembered(imagefolder, tmp_path):
    (imagefolder / "red" / "empty.jpg").write_bytes(b"")
    (imagefolder / "blue" / "notes.jpg").write_text("not a picture")
    store, first = _extract(imagefolder, tmp_path / "s")
    reasons = {s["path"]: s["reason"] for s in first.skipped}
    assert reasons.keys() == {"red/empty.jpg", "blue/notes.jpg"} and "empty" in reasons["red/empty.jpg"]
    assert first.computed == 20 and len(store.load().paths) == 20
    _, again = _extract(imagefolder, tmp_path / "s")
    assert {s["path"] for s in again.skipped} == reasons.keys() and again.computed == 0


def test_leftover_temp_and_damaged_shards_do_not_break_the_store(imagefolder, tmp_path):
    store, _ = _extract(imagefolder, tmp_path / "s")
    (store.dir / "part-00000000000000000001-1.parquet.tmp").write_bytes(b"half written")
    (store.dir / "part-99999999999999999999-1.parquet").write_bytes(b"not parquet")
    assert len(store.load().paths) == 20
    _, again = _extract(imagefolder, tmp_path / "s")
    assert again.cached == 20


SLOW_EXTRACT = textwrap.dedent(
    """
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    import conftest  # registers the tiny backbone
    from siirto.backbones import load_backbone
    from siirto.data import find_images
    from siirto.extract import extract
    from siirto.store import FeatureStore

    net = load_backbone(conftest.TINY)
    inner = net.body
    class Slow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner
        def forward(self, x):
            time.sleep(0.3)
            return self.inner(x)
    net.body = Slow()
    store = FeatureStore({store!r}, net.identity, net.feature_dim)
    extract(find_images({data!r}), net, store, batch_size=4, progress=False, engine="torch")
    """
)


def test_kill_dash_nine_then_resume(tmp_path):
    data = make_imagefolder(tmp_path / "data", per_class=20)
    store_root = tmp_path / "s"
    script = tmp_path / "slow.py"
    script.write_text(SLOW_EXTRACT.format(tests=str(Path(__file__).parent), store=str(store_root), data=str(data)))
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ})
    net = load_backbone(TINY)
    store = FeatureStore(store_root, net.identity, net.feature_dim)
    deadline = time.time() + 60
    while len(store.index()) < 8 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(store.index())
    assert 8 <= done < 40, done  # killed part-way through
    table = store.load()  # the store is readable after the kill
    assert len(table.paths) == done
    _, resumed = _extract(data, store_root, net)
    assert resumed.cached == done and resumed.computed == 40 - done
    assert len(store.load().paths) == 40


def test_damaged_onnx_cache_file_is_exported_again(imagefolder, tmp_path):
    from siirto import extract as extract_module

    net = load_backbone(TINY)
    engine = extract_module.OnnxEngine(net)
    onnx_files = list((extract_module.cache_dir() / "onnx").glob(f"{TINY}-{net.identity_hash}-*.onnx"))
    assert len(onnx_files) == 1
    onnx_files[0].write_bytes(b"garbage")
    batch = np.zeros((2, 32, 32, 3), np.uint8)
    again = extract_module.OnnxEngine(net)
    np.testing.assert_allclose(again(batch), engine(batch), atol=1e-6)
