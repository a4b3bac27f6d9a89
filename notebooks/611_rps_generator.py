# /// script
# dependencies = ["siirto", "marimo", "wigglystuff"]
# ///
"""Course exercise 611: build your own rock-paper-scissors (or any) dataset with the webcam.

    marimo run notebooks/611_rps_generator.py      # then allow the camera in the browser

Frames are saved as data/<dataset>/<label>/<label>_<time>_<n>.jpg: each frame exactly once, under the
label chosen when it was taken (changing the label does not save the last frame again), never
overwriting another. Without marimo: `siirto capture --labels rock,paper,scissors --out data/rps`.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import os
    from pathlib import Path

    import marimo as mo
    from wigglystuff import WebcamCapture

    from siirto.capture import FrameSaver, explain_camera_error, parse_labels
    from siirto.errors import SiirtoError

    return FrameSaver, Path, SiirtoError, WebcamCapture, explain_camera_error, mo, os, parse_labels


@app.cell
def _(mo, os):
    root = os.environ.get("SIIRTO_CAPTURE_ROOT", "data")
    dataset_name = mo.ui.text(value="rps", label="dataset")
    label_text = mo.ui.text(value="rock,paper,scissors", label="labels (comma-separated, e.g. glasses,cap,beanie)",
                            full_width=True)
    interval = mo.ui.number(start=100, stop=5000, step=100, value=500, label="auto-capture every (ms)")
    mo.vstack([mo.md("# Capture your own dataset"), mo.hstack([dataset_name, interval]), label_text])
    return dataset_name, interval, label_text, root


@app.cell
def _(SiirtoError, label_text, mo, parse_labels):
    try:
        labels, label_problem = parse_labels(label_text.value), None
    except SiirtoError as exc:
        labels, label_problem = [], str(exc)
    chooser = mo.ui.radio(options=labels, value=labels[0] if labels else None, label="label for the next frames",
                          inline=True)
    mo.md(f"**Labels:** {label_problem}") if label_problem else chooser
    return chooser, labels


@app.cell
def _(FrameSaver, Path, dataset_name, root):
    saver = FrameSaver(Path(root) / dataset_name.value)
    return (saver,)


@app.cell
def _(WebcamCapture, interval, mo):
    cam = mo.ui.anywidget(WebcamCapture(interval_ms=int(interval.value)))
    cam
    return (cam,)


@app.cell
def _(cam, chooser, labels, saver):
    # Re-runs when a frame arrives *and* when the label changes: save_new keeps each frame to one save.
    frame = cam.value.get("image_base64", "")
    saved = saver.save_new(frame, chooser.value) if labels and chooser.value else None
    return (saved,)


@app.cell
def _(cam, explain_camera_error, labels, mo, saved, saver):
    counts = saver.counts(labels)
    problem = explain_camera_error(cam.value.get("error", ""))
    thumbs = [mo.image(str(p), width=110, caption=p.parent.name) for p in saver.recent(6)]
    mo.vstack([
        mo.callout(mo.md(problem), kind="danger") if problem else mo.md(""),
        mo.md(f"Saving to `{saver.out}`" + (f" -- last saved `{saved.parent.name}/{saved.name}`" if saved else "")),
        mo.ui.table([{"label": k, "images": v} for k, v in counts.items()], selection=None),
        mo.hstack(thumbs, justify="start") if thumbs else mo.md("_No frames yet._"),
    ])
    return


if __name__ == "__main__":
    app.run()
