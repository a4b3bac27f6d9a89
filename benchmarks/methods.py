"""Issue 3's targets: head training on cached features vs through the frozen base, and accuracy of
logreg / head / finetune on hymenoptera_dev and rps_dev.

    python benchmarks/methods.py [--parts speed hymenoptera rps] [--seeds 0 1 2 3 4]

rps_dev is split by clip/source image (``--group``): its files include Roboflow's augmented copies
of one photo and many frames of one video, and a random split would put near-copies of training
images into the test set.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import dataset_path, fresh_cache, subset  # noqa: E402

import siirto  # noqa: E402
from siirto.pipeline import extract_dataset, train_model  # noqa: E402
from siirto.train import make_head, train_head_on_features  # noqa: E402

RPS_GROUP = r"^[a-z]+\.(.+?_(?:MOV|mov|mp4)|.+?)(?:-\d+_jpg)?\.rf\."
quiet = dict(progress=False)


def head_speed(per_class: int, epochs: int = 5) -> None:
    """5 epochs of a Linear head: on cached features vs the course notebook's way (ImageFolder +
    DataLoader(batch_size=32, shuffle=True), frozen base run on every batch of every epoch)."""
    from torchvision import datasets, transforms

    net = siirto.load_backbone("efficientnet_lite0")
    with tempfile.TemporaryDirectory() as tmp:
        folder = subset(dataset_path("dogs_vs_cats_dev"), per_class, Path(tmp) / "d")
        started = time.perf_counter()
        dataset, store, _ = extract_dataset(folder, net, Path(tmp) / "store", **quiet)
        t_extract = time.perf_counter() - started
        table = store.load()
        classes = sorted(set(table.labels))
        y = [classes.index(c) for c in table.labels]
        torch.manual_seed(0)
        head_fast = make_head("linear", net.feature_dim, len(classes))
        head_slow = copy.deepcopy(head_fast)
        started = time.perf_counter()
        train_head_on_features(head_fast, table.features, y, epochs=epochs, log=lambda _: None)
        t_fast = time.perf_counter() - started

        pre = net.preprocessing
        tf = transforms.Compose([transforms.Resize(pre.resize), transforms.CenterCrop(pre.crop), transforms.ToTensor(),
                                 transforms.Normalize(pre.mean, pre.std)])
        loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(folder), tf), batch_size=32, shuffle=True)
        body = net.body.eval()
        for p in body.parameters():
            p.requires_grad = False
        optimizer = torch.optim.Adam(head_slow.parameters(), lr=1e-3)
        started = time.perf_counter()
        for _ in range(epochs):
            for x, target in loader:
                loss = torch.nn.functional.cross_entropy(head_slow(body(x)), target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        t_slow = time.perf_counter() - started
    n = len(table.paths)
    print(json.dumps({"part": "head_speed", "images": n, "epochs": epochs, "cached_features_s": round(t_fast, 3),
                      "frozen_base_s": round(t_slow, 1), "extraction_once_s": round(t_extract, 1),
                      "ratio_training": round(t_slow / t_fast, 1),
                      "ratio_including_extraction": round(t_slow / (t_fast + t_extract), 1)}), flush=True)
    print(f"head training, {epochs} epochs on {n} images: cached features {t_fast:.2f} s vs through the frozen base "
          f"{t_slow:.0f} s = {t_slow / t_fast:.0f}x (including the one-off extraction: {t_slow / (t_fast + t_extract):.1f}x)")


def compare(name: str, seeds: list[int], methods: dict[str, dict], group: str | None = None) -> None:
    data = dataset_path(name)
    results: dict[str, list[float]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        for seed in seeds:
            for method, options in methods.items():
                started = time.perf_counter()
                if method == "logreg":
                    m = siirto.run(data, Path(tmp) / f"{method}-{seed}", seed=seed, store=store, group=group, **quiet)
                else:
                    m = train_model(data, Path(tmp) / f"{method}-{seed}", seed=seed, store=store, group=group,
                                    log=lambda _: None, **options, **quiet)
                results[method].append(m["accuracy"])
                print(json.dumps({"dataset": name, "method": method, "seed": seed, "accuracy": m["accuracy"],
                                  "n_train": m["n_train"], "n_test": m["n_test"], "options": options,
                                  "group": group, "best_epoch": m.get("best_epoch"),
                                  "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    for method, accs in results.items():
        print(f"{name} {method}: mean {statistics.mean(accs):.2%} over seeds {seeds} "
              f"({', '.join(f'{a:.2%}' for a in accs)})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", nargs="+", default=["speed", "hymenoptera", "rps"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--per-class", type=int, default=200)
    args = parser.parse_args()
    fresh_cache()
    if "speed" in args.parts:
        head_speed(args.per_class)
    if "hymenoptera" in args.parts:
        compare("hymenoptera_dev", args.seeds, {
            "logreg": {},
            "finetune": {"method": "finetune", "epochs": 5, "augment": True},  # unfreezes the last block
        })
    if "rps" in args.parts:
        compare("rps_dev", args.seeds[:1], {
            "logreg": {},
            "head": {"method": "head", "head": "mlp", "epochs": 30, "patience": 5},
            "finetune": {"method": "finetune", "epochs": 4, "augment": True},
        }, group=RPS_GROUP)


if __name__ == "__main__":
    main()
