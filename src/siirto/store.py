"""The feature cache: Parquet files on disk, safe to interrupt at any moment.

Layout: ``STORE/<backbone>-<identity>/`` holds ``store.json`` (backbone, weights id, preprocessing)
and ``part-<time>.parquet`` shards. Each image has a row: relative path, label, layout split,
content hash (BLAKE2b of the file bytes), a stamp (size + mtime), the feature vector, and the
reason if it was skipped. A file whose stamp is unchanged is not even read on a re-run; one whose
stamp changed is read and hashed, and recomputed only if its content changed.

Why Parquet (pyarrow): columnar, compressed, typed, readable from pandas/polars/duckdb without
siirto; a fixed-size float32 list column keeps the vectors exact. Why shards: each batch is written
to a temporary file and renamed into place, so a kill -9 at any point loses at most the batch being
computed, and a reader never sees half a file. Later shards win over earlier ones for the same
path; ``compact()`` merges them into one and drops what they superseded.

Features with a different identity (backbone, weights, preprocessing) live in a different
sub-folder, so they can never mix, and switching back to an earlier backbone is a cache hit.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .backbones import identity_hash
from .errors import SiirtoError

FORMAT = "siirto.features/2"


@dataclass
class FeatureTable:
    """Features of the usable images (rows without errors), plus what was skipped."""

    paths: list[str]
    labels: list[str | None]
    splits: list[str]
    features: np.ndarray  # (n, dim) float32
    skipped: list[dict]  # {"path", "reason"}
    identity: dict

    def select(self, paths: list[str]) -> "FeatureTable":
        index = {p: i for i, p in enumerate(self.paths)}
        rows = [index[p] for p in paths if p in index]
        wanted = set(paths)
        return FeatureTable(
            [self.paths[i] for i in rows],
            [self.labels[i] for i in rows],
            [self.splits[i] for i in rows],
            self.features[rows],
            [s for s in self.skipped if s["path"] in wanted],
            self.identity,
        )


class FeatureStore:
    def __init__(self, root: str | Path, identity: dict, feature_dim: int):
        self.root = Path(root)
        self.identity = identity
        self.feature_dim = feature_dim
        self.dir = self.root / f"{identity['backbone']}-{identity_hash(identity)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "identity": identity, "feature_dim": feature_dim}
        meta_path = self.dir / "store.json"
        if meta_path.exists():
            old = json.loads(meta_path.read_text())
            if old.get("identity") != identity or old.get("feature_dim") != feature_dim:
                raise SiirtoError(f"{meta_path}: store identity does not match; delete {self.dir} to rebuild it")
        else:
            _atomic_write(meta_path, json.dumps(meta, indent=2).encode())
        self.schema = pa.schema(
            [
                ("path", pa.string()),
                ("label", pa.string()),
                ("split", pa.string()),
                ("sha", pa.string()),
                ("stamp", pa.string()),
                ("error", pa.string()),
                ("feature", pa.list_(pa.float32(), feature_dim)),
            ]
        )

    @classmethod
    def open(cls, root: str | Path, backbone: str | None = None) -> "FeatureStore":
        """Open an existing store for reading; with several backbones inside, ``backbone`` chooses."""
        root = Path(root)
        metas = sorted(root.glob("*/store.json")) if root.is_dir() else []
        if (root / "store.json").exists():
            metas = [root / "store.json"]
        found = [(m, json.loads(m.read_text())) for m in metas]
        if backbone:
            found = [(m, d) for m, d in found if d["identity"]["backbone"] == backbone]
        if not found:
            what = f" for backbone {backbone}" if backbone else ""
            raise SiirtoError(f"{root}: no feature store{what} here; run `siirto extract DATA --out {root}` first")
        if len(found) > 1:
            options = ", ".join(f"{d['identity']['backbone']} ({m.parent.name})" for m, d in found)
            raise SiirtoError(f"{root}: several feature stores ({options}); choose one with --backbone")
        meta = found[0][1]
        return cls(found[0][0].parent.parent, meta["identity"], meta["feature_dim"])

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet"))

    def _read_latest(self, columns: list[str] | None = None) -> pa.Table | None:
        tables = []
        for shard in self._shards():
            try:
                tables.append(pq.read_table(shard, schema=self.schema, columns=columns))
            except Exception:
                # Only a foreign or damaged file can fail here (ours are renamed into place whole).
                shard.rename(shard.with_suffix(".damaged"))
        if not tables:
            return None
        table = pa.concat_tables(tables)
        paths = table.column("path").to_pylist()
        last = {p: i for i, p in enumerate(paths)}  # later shards win
        if len(last) == len(paths):
            return table
        return table.take(pa.array(sorted(last.values()), type=pa.int64()))

    def index(self) -> dict[str, tuple[str, str, str | None]]:
        """path -> (content hash, stamp, skip reason) of what is stored; skipped files are not re-read."""
        table = self._read_latest(["path", "sha", "stamp", "error"])  # not the vectors: fast
        if table is None:
            return {}
        cols = [table.column(c).to_pylist() for c in ("sha", "stamp", "error")]
        return dict(zip(table.column("path").to_pylist(), zip(*cols)))

    def append(self, rows: list[dict]) -> None:
        """Write one shard atomically. Rows: path, label, split, sha, stamp, error, feature (None if error)."""
        if not rows:
            return
        table = pa.Table.from_pylist(rows, schema=self.schema)
        name = f"part-{time.time_ns():020d}-{os.getpid()}.parquet"
        tmp = self.dir / (name + ".tmp")
        pq.write_table(table, tmp, compression="zstd")
        _fsync(tmp)
        os.replace(tmp, self.dir / name)

    def compact(self) -> None:
        """Merge all shards into one (the new file first, then the old ones go: crash-safe)."""
        shards = self._shards()
        if len(shards) <= 1:
            return
        table = self._read_latest()
        name = f"part-{time.time_ns():020d}-{os.getpid()}.parquet"
        tmp = self.dir / (name + ".tmp")
        pq.write_table(table, tmp, compression="zstd")
        _fsync(tmp)
        os.replace(tmp, self.dir / name)
        for shard in shards:
            shard.unlink(missing_ok=True)
        for stale in self.dir.glob("*.tmp"):
            stale.unlink(missing_ok=True)

    def load(self, paths: list[str] | None = None) -> FeatureTable:
        """Read features (for ``paths`` if given, in that order; missing ones are left out)."""
        table = self._read_latest()
        if table is None:
            return FeatureTable([], [], [], np.zeros((0, self.feature_dim), np.float32), [], self.identity)
        cols = {c: table.column(c).to_pylist() for c in ("path", "label", "split", "error")}
        order = range(len(cols["path"]))
        if paths is not None:
            where = {p: i for i, p in enumerate(cols["path"])}
            order = [where[p] for p in paths if p in where]
        ok = [i for i in order if cols["error"][i] is None]
        skipped = [{"path": cols["path"][i], "reason": cols["error"][i]} for i in order if cols["error"][i] is not None]
        matrix = _feature_matrix(table.column("feature").combine_chunks(), self.feature_dim)
        return FeatureTable(
            [cols["path"][i] for i in ok],
            [cols["label"][i] for i in ok],
            [cols["split"][i] or "" for i in ok],
            np.ascontiguousarray(matrix[ok], dtype=np.float32),
            skipped,
            self.identity,
        )


def _feature_matrix(column: pa.FixedSizeListArray, dim: int) -> np.ndarray:
    """Fixed-size list column -> (n, dim) array, zeros where the value is null (skipped files)."""
    n = len(column)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if len(flat) == n * dim:
        return flat.reshape(n, dim)
    matrix = np.zeros((n, dim), np.float32)
    matrix[valid] = flat.reshape(-1, dim)
    return matrix


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
