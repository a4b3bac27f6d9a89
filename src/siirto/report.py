"""Honest evaluation: metrics, confusion matrix, the most confidently wrong images, baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from .data import BadImage, ImageSource, decode_image

# ImageNet class indices (torchvision order) for the no-training cat/dog baseline.
IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
IMAGENET_DOGS = range(151, 269)  # Chihuahua ... Mexican hairless

# Kaggle Dogs vs. Cats (2013-14, 215 teams) reference points we can vouch for; the full
# leaderboard is not shipped, so placement is stated against these, not as an exact rank.
KAGGLE_REFERENCES = [
    (0.989, "the winner (Pierre Sermanet, OverFeat)"),
    (0.9869, "Rosebrock's ResNet50 features + LogisticRegression (a book result, not a leaderboard entry)"),
    (0.981, "6th place"),
]


def classification_metrics(y_true: list[str], y_pred: list[str], classes: list[str]) -> dict:
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if y_true else None,
        "per_class": {
            c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist() if y_true else [],
        "classes": classes,
    }


def worst_errors(paths: list[str], y_true: list[str], probs: np.ndarray, classes: list[str], k: int = 16) -> list[dict]:
    """Wrong predictions, most confident first: where the model is surest and still wrong."""
    pred = probs.argmax(axis=1)
    rows = [
        {"path": p, "label": t, "predicted": classes[i], "probability": float(probs[n, i]),
         "p_true": float(probs[n, classes.index(t)]) if t in classes else None}
        for n, (p, t, i) in enumerate(zip(paths, y_true, pred))
        if classes[i] != t
    ]
    return sorted(rows, key=lambda r: -r["probability"])[:k]


def catdog_imagenet_baseline(features: np.ndarray, head: torch.nn.Linear, labels: list[str]) -> dict | None:
    """Accuracy of the pretrained ImageNet head with no training, cats = classes 281-285, dogs 151-268.

    Only for cat/dog data (class names cat(s)/dog(s), any case). ImageNet logits are the head
    applied to the stored features, so no image is decoded again.
    """
    names = {lab: lab.lower().rstrip("s") for lab in set(labels)}
    if sorted(set(names.values())) != ["cat", "dog"]:
        return None
    with torch.inference_mode():
        logits = head(torch.from_numpy(np.asarray(features, np.float32)))
        p = logits.softmax(dim=1).numpy()
    p_cat, p_dog = p[:, list(IMAGENET_CATS)].sum(1), p[:, list(IMAGENET_DOGS)].sum(1)
    pred = np.where(p_dog > p_cat, "dog", "cat")
    truth = np.array([names[lab] for lab in labels])
    return {
        "accuracy": float((pred == truth).mean()),
        "n": int(len(labels)),
        "how": "pretrained ImageNet head, no training: P(cat)=sum over classes 281-285, P(dog)=sum over 151-268",
    }


def kaggle_placement(accuracy: float, n_test: int | None = None) -> str:
    caveat = (f" -- on your {n_test} test images, not Kaggle's 12,500, so this is a comparison, not a rank"
              if n_test else "")
    for score, who in KAGGLE_REFERENCES:
        if accuracy >= score:
            return f"Kaggle Dogs vs. Cats (2013): {accuracy:.2%} is at or above {who}, {score:.2%}{caveat}"
    return f"Kaggle Dogs vs. Cats (2013): {accuracy:.2%} is below 6th place (98.10%; the winner had 98.90%){caveat}"


# ------------------------------------------------------------------------------------------ plots


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.0, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=classes).plot(ax=ax, colorbar=False, cmap="Blues")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def contact_sheet(source: ImageSource, rows: list[dict], path: Path, tile: int = 160, columns: int = 4) -> Path | None:
    """A grid of images, each captioned 'true -> predicted (p)'."""
    if not rows:
        return None
    caption_h = 34
    columns = min(columns, len(rows))
    n_rows = (len(rows) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tile, n_rows * (tile + caption_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, row in enumerate(rows):
        x, y = (i % columns) * tile, (i // columns) * (tile + caption_h)
        try:
            im = decode_image(source.read_bytes(row["path"]), draft_size=tile)
            sheet.paste(ImageOps.pad(im, (tile, tile), color="white"), (x, y))
        except (BadImage, OSError):
            draw.rectangle([x, y, x + tile - 1, y + tile - 1], outline="red")
        name = Path(row["path"]).name[:24]
        draw.text((x + 3, y + tile + 2), f"{row['label']} -> {row['predicted']} ({row['probability']:.2f})", fill="black")
        draw.text((x + 3, y + tile + 17), name, fill="gray")
    sheet.save(path)
    return path


def image_sizes(source: ImageSource, paths: list[str]) -> list[dict]:
    """Width and height of each file from its header only (fast); 0 x 0 where it cannot be read."""
    import io

    from PIL import Image

    sizes = []
    for path in paths:
        try:
            with Image.open(io.BytesIO(source.read_bytes(path))) as im:
                width, height = im.size
        except Exception:
            width = height = 0
        sizes.append({"path": path, "width": width, "height": height})
    return sizes


def write_history(rows: list[dict], folder: Path) -> None:
    """history.csv (one line per epoch) and history.png (loss and accuracy curves)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(folder / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    epochs = [r["epoch"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [r["loss"] for r in rows], marker="o")
    left.set(title="training loss", xlabel="epoch")
    right.plot(epochs, [r["accuracy"] for r in rows], marker="o", label="train")
    if any(r.get("val_accuracy") is not None for r in rows):
        right.plot(epochs, [r.get("val_accuracy") for r in rows], marker="o", label="validation")
    right.set(title="accuracy", xlabel="epoch")
    right.legend()
    fig.tight_layout()
    fig.savefig(folder / "history.png", dpi=100)
    plt.close(fig)


def write_metrics(metrics: dict, folder: Path) -> Path:
    path = folder / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2))
    return path


def summary(metrics: dict) -> str:
    lines = [
        f"backbone {metrics['backbone']} ({metrics.get('weights')}), {metrics.get('method', 'logreg')}"
        + (f", trained blocks: {', '.join(metrics['trained_blocks'])}" if metrics.get("trained_blocks") else ""),
        f"train {metrics['n_train']} images, test {metrics['n_test']} images, classes {', '.join(metrics['classes'])}",
        f"test accuracy {metrics['accuracy']:.2%}" if metrics.get("accuracy") is not None else "no test images",
    ]
    if metrics.get("cv_accuracy") is not None:
        lines.append(f"cross-validated accuracy on train {metrics['cv_accuracy']:.2%} (C={metrics.get('C')})")
    if metrics.get("best_val_accuracy") is not None:
        lines.append(f"best validation accuracy {metrics['best_val_accuracy']:.2%} (epoch {metrics['best_epoch']}, kept)")
    for name, m in metrics["per_class"].items():
        lines.append(f"  {name:>16}: precision {m['precision']:.3f}  recall {m['recall']:.3f}  f1 {m['f1']:.3f}  n={m['support']}")
    if metrics.get("imagenet_baseline"):
        lines.append(f"no-training ImageNet-head baseline on the same test images: {metrics['imagenet_baseline']['accuracy']:.2%}")
    if metrics.get("kaggle"):
        lines.append(metrics["kaggle"])
    if metrics.get("skipped"):
        lines.append(f"skipped {len(metrics['skipped'])} file(s):")
        lines += [f"  {s['path']}: {s['reason']}" for s in metrics["skipped"][:20]]
        if len(metrics["skipped"]) > 20:
            lines.append(f"  ... and {len(metrics['skipped']) - 20} more (see metrics.json)")
    if metrics.get("ignored"):
        lines.append(ignored_line(metrics["ignored"]))
    return "\n".join(lines)


def ignored_line(ignored: list[str]) -> str:
    """Files left out because their extension is not an image type we read (e.g. .heic, .txt)."""
    kinds = sorted({Path(f).suffix.lower() or "(no extension)" for f in ignored})
    return (f"ignored {len(ignored)} file(s) that are not a supported image type ({', '.join(kinds[:8])}), "
            f"e.g. {ignored[0]}")
