# /// script
# dependencies = ["siirto", "marimo", "wigglystuff"]
# ///
"""Course exercise 612: transfer learning on the dataset you captured in 611, then live prediction.

    marimo run notebooks/612_rps_transfer_learning.py -- --data data/rps
    python notebooks/612_rps_transfer_learning.py --data data/rps --out runs/612     # headless

Options (after `--` with marimo): --backbone (default inception_v3, as in the course; the offline
default when its weights cannot be had), --epochs, --stages (e.g. head:3,Mixed_7c:2 to fine-tune in
stages), --group REGEX (keep bursts of similar frames on one side of the split).
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import base64
    import os
    import time
    from pathlib import Path

    import marimo as mo

    import siirto
    from siirto.pipeline import train_model

    return Path, base64, mo, os, siirto, time, train_model


@app.cell
def _(Path, mo, os):
    args = mo.cli_args()
    data = Path(args.get("data") or os.environ.get("SIIRTO_DATA") or "data/rps")
    out = Path(args.get("out") or os.environ.get("SIIRTO_OUT") or "runs/612")
    wanted_backbone = args.get("backbone") or os.environ.get("SIIRTO_BACKBONE") or "inception_v3"
    epochs = int(args.get("epochs") or 10)
    stages = args.get("stages") or None
    group = args.get("group") or None
    mo.md(f"# Rock, paper, scissors: transfer learning on your own photos\n\nData: `{data}`")
    return data, epochs, group, out, stages, wanted_backbone


@app.cell
def _(data, mo, siirto):
    mo.stop(not data.exists(), mo.md(f"**`{data}` does not exist.** Capture a dataset with notebook 611 first."))
    dataset = siirto.find_images(data)
    per_class = {}
    for sample in dataset.samples:
        per_class.setdefault(sample.label, []).append(sample.path)
    rows = [mo.hstack([mo.md(f"**{label}** ({len(paths)})")]
                      + [mo.image(str(data / p), width=96) for p in paths[:5]], justify="start")
            for label, paths in sorted(per_class.items())]
    mo.vstack([mo.md("## Examples per class"), *rows])
    return


@app.cell
def _(mo, siirto, wanted_backbone):
    backbone, note = siirto.backbones.backbone_or_offline_default(wanted_backbone)
    mo.md(f"## Training\n\n{note}")
    return (backbone,)


@app.cell
def _(backbone, data, epochs, group, out, stages, train_model):
    log = []
    method = "finetune" if stages else "head"
    metrics = train_model(data, out, method=method, backbone=backbone, head="mlp", epochs=epochs, stages=stages,
                          augment=bool(stages), patience=4, group=group, progress=False, log=log.append)
    return log, metrics


@app.cell
def _(log, metrics, mo, out):
    mo.vstack([
        mo.md(f"**{metrics['method']}**: test accuracy **{metrics['accuracy']:.2%}** on {metrics['n_test']} images "
              f"(trained on {metrics['n_train']}; best validation epoch {metrics.get('best_epoch')})"),
        mo.accordion({"training log": mo.md("```\n" + "\n".join(log) + "\n```")}),
        mo.hstack([mo.image(str(out / "confusion_matrix.png"), width=340), mo.image(str(out / "history.png"), width=520)]),
        mo.image(str(out / "worst_errors.png")) if metrics["worst_errors"] else mo.md("No test image was misclassified."),
    ])
    return


@app.cell
def _(mo, out):
    from siirto.capture.live import Predictor
    from wigglystuff import WebcamCapture

    predictor = Predictor(out / "model")
    clock = {"last": None}  # time of the previous frame, for frames/s
    cam = mo.ui.anywidget(WebcamCapture(interval_ms=250))
    mo.vstack([mo.md("## Live prediction\n\nTurn on auto-capture: every frame is classified."), cam])
    return cam, clock, predictor


@app.cell
def _(base64, cam, clock, mo, predictor, time):
    frame = cam.value.get("image_base64", "")
    if not frame:
        live = mo.md("_No camera frame yet._")
    else:
        now = time.perf_counter()
        result = predictor.predict(base64.b64decode(frame.split("base64,", 1)[-1]))
        fps = 1 / (now - clock["last"]) if clock["last"] else None
        clock["last"] = now
        live = mo.md(f"# {result['label']}\n{result['probability']:.1%} (model {result['ms']} ms"
                     + (f", {fps:.1f} frames/s)" if fps else ")"))
    live
    return


if __name__ == "__main__":
    app.run()
