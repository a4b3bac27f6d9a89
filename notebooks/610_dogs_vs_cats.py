# /// script
# dependencies = ["siirto", "marimo"]
# ///
"""Course exercise 610: Dogs vs. Cats by feature-based transfer learning.

    marimo edit notebooks/610_dogs_vs_cats.py            # as a notebook
    marimo run notebooks/610_dogs_vs_cats.py -- --data train.zip
    python notebooks/610_dogs_vs_cats.py --data train/ --out runs/610    # headless, as a script

--data: Kaggle's train folder or train.zip (cat.0.jpg, dog.0.jpg, ...), or any cat/dog ImageFolder.
Without it (and online, with `pip install datasets`), the Hugging Face microsoft/cats_vs_dogs set.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import os
    from pathlib import Path

    import marimo as mo

    import siirto
    from siirto.report import image_sizes

    return Path, image_sizes, mo, os, siirto


@app.cell
def _(Path, mo, os):
    args = mo.cli_args()
    data_arg = args.get("data") or os.environ.get("SIIRTO_DATA")
    out = Path(args.get("out") or os.environ.get("SIIRTO_OUT") or "runs/610")
    wanted_backbone = args.get("backbone") or os.environ.get("SIIRTO_BACKBONE") or "resnet50"
    return data_arg, out, wanted_backbone


@app.cell
def _(Path, data_arg, mo, out):
    def hugging_face_copy(folder: Path) -> Path:
        """Write microsoft/cats_vs_dogs as cat.N.jpg / dog.N.jpg (needs internet and `datasets`)."""
        from datasets import load_dataset  # optional: pip install datasets

        folder.mkdir(parents=True, exist_ok=True)
        for i, row in enumerate(load_dataset("microsoft/cats_vs_dogs", split="train")):
            name = "dog" if row["labels"] == 1 else "cat"
            row["image"].convert("RGB").save(folder / f"{name}.{i}.jpg", quality=95)
        return folder

    if data_arg:
        data = Path(data_arg)
        source = f"`{data}`"
    else:
        try:
            data = hugging_face_copy(out / "cats_vs_dogs")
            source = "the Hugging Face `microsoft/cats_vs_dogs` dataset"
        except Exception as exc:  # offline, or `datasets` missing
            data = None
            source = f"nothing: pass `--data train.zip` (Kaggle) -- the Hugging Face download failed ({exc})"
    mo.md(f"# Dogs vs. Cats, by feature-based transfer\n\nData: {source}")
    return (data,)


@app.cell
def _(data, image_sizes, mo, siirto):
    mo.stop(data is None, mo.md("**No data.** Run with `--data` pointing at Kaggle's `train.zip` or folder."))
    dataset = siirto.find_images(data)
    sizes = image_sizes(dataset.source, [s.path for s in dataset.samples])
    counts = dataset.counts()
    mo.md(f"## Look at the data\n\n{len(dataset.samples)} images ({dataset.layout} layout): "
          + ", ".join(f"**{k}** {v}" for k, v in counts.items()))
    return dataset, sizes


@app.cell
def _(dataset, mo, sizes):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    usable = [s for s in sizes if s["width"]]
    ratios = [s["width"] / s["height"] for s in usable]
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.hist(ratios, bins=40)
    ax.set(xlabel="aspect ratio (width / height)", ylabel="images", title="Aspect ratios")
    fig.tight_layout()
    widest = max(usable, key=lambda s: s["width"] / s["height"])
    tallest = min(usable, key=lambda s: s["width"] / s["height"])

    def show(item, title):
        from siirto.data import decode_image

        image = decode_image(dataset.source.read_bytes(item["path"]))
        image.thumbnail((320, 320))
        return mo.vstack([mo.md(f"**{title}**: `{item['path']}`, {item['width']}x{item['height']}"), mo.image(image)])

    mo.vstack([fig, mo.hstack([show(widest, "widest"), show(tallest, "tallest")])])
    return


@app.cell
def _(mo, siirto, wanted_backbone):
    backbone, note = siirto.backbones.backbone_or_offline_default(wanted_backbone)
    mo.md(f"## Features + LogisticRegression\n\n{note}")
    return (backbone,)


@app.cell
def _(backbone, data, out, siirto):
    metrics = siirto.run(data, out, backbone=backbone, progress=False)
    return (metrics,)


@app.cell
def _(metrics, mo):
    baseline = metrics.get("imagenet_baseline")
    lines = [
        f"- Test accuracy: **{metrics['accuracy']:.2%}** on {metrics['n_test']} images "
        f"(trained on {metrics['n_train']}; C = {metrics['C']} by cross-validation)",
        f"- No training at all, the ImageNet head (cat classes 281-285 vs dog classes 151-268): "
        f"**{baseline['accuracy']:.2%}**" if baseline else "- (No ImageNet-head baseline: the classes are not cat/dog.)",
        f"- {metrics['kaggle']}" if metrics.get("kaggle") else "",
        f"- Skipped files: {len(metrics['skipped'])}" + "".join(f"\n    - `{s['path']}`: {s['reason']}" for s in metrics["skipped"][:10]),
    ]
    mo.md("## Results\n\n" + "\n".join(line for line in lines if line))
    return


@app.cell
def _(metrics, mo, out):
    sheets = [mo.md("### Confusion matrix"), mo.image(str(out / "confusion_matrix.png"), width=360)]
    if metrics["worst_errors"]:
        sheets += [mo.md("### The worst-classified test images (most confidently wrong)"),
                   mo.image(str(out / "worst_errors.png"))]
    else:
        sheets.append(mo.md("No test image was misclassified."))
    mo.vstack(sheets)
    return


if __name__ == "__main__":
    app.run()
