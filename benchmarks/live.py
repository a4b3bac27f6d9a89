"""Live prediction speed with the default backbone: camera-sized JPEG frames (640x480) through
`Predictor.predict` (decode, resize, backbone, classifier), one frame at a time as the live page does.

    python benchmarks/live.py [--frames 60]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _common import dataset_path, fresh_cache  # noqa: E402

from siirto.capture.live import Predictor  # noqa: E402
from siirto.pipeline import run, train_model  # noqa: E402


def frames(n: int) -> list[bytes]:
    files = sorted(dataset_path("rps_dev").rglob("*.jpg"))[:n]
    out = []
    for f in files:
        buf = io.BytesIO()
        Image.open(f).convert("RGB").resize((640, 480)).save(buf, "JPEG", quality=92)
        out.append(buf.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    fresh_cache()
    data = dataset_path("hymenoptera_dev")
    shots = frames(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        run(data, Path(tmp) / "logreg", progress=False)
        train_model(data, Path(tmp) / "head", method="head", epochs=3, progress=False, log=lambda _: None)
        for kind in ("logreg", "head"):
            predictor = Predictor(Path(tmp) / kind / "model")
            predictor.predict(shots[0])  # warm-up (engine start, first allocation)
            started = time.perf_counter()
            ms = [predictor.predict(s)["ms"] for s in shots]
            seconds = time.perf_counter() - started
            print(json.dumps({"model": kind, "backbone": "efficientnet_lite0", "frames": len(shots),
                              "frames_per_second": round(len(shots) / seconds, 1),
                              "median_ms": sorted(ms)[len(ms) // 2]}))
            print(f"{kind}: {len(shots) / seconds:.1f} frames/s (median {sorted(ms)[len(ms) // 2]} ms per 640x480 frame)")


if __name__ == "__main__":
    main()
