"""The `siirto` command: a thin layer over the library. Errors the user can fix print one line."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from . import __version__
from .backbones import DEFAULT_BACKBONE, available, describe, imagenet_categories, load_backbone
from .errors import SiirtoError


def _backbone_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"network to take features from (default {DEFAULT_BACKBONE})")
    p.add_argument("--weights", dest="weights_file", metavar="FILE", help="a local state dict instead of the standard weights")
    p.add_argument("--weights-id", default="default", help="which published weights, e.g. IMAGENET1K_V1 (default: the newest)")


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siirto", description="Transfer learning on images: pretrained features, your classes.")
    parser.add_argument("--version", action="version", version=f"siirto {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the whole pipeline on a built-in generated example")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--per-class", type=int, default=40)
    _run_args(p)

    p = sub.add_parser("inspect", help="show a backbone's blocks, parameters, feature size and preprocessing")
    p.add_argument("backbone", nargs="?", default=DEFAULT_BACKBONE)
    p.add_argument("--list", action="store_true", help="list the backbones")
    p.add_argument("--pretrained", action="store_true", help="load the real weights (downloads for torchvision models)")
    p.add_argument("--weights", dest="weights_file", metavar="FILE")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("classify", help="top-5 ImageNet labels with the pretrained head")
    p.add_argument("images", nargs="+")
    p.add_argument("--top", type=int, default=5)
    _backbone_args(p)

    p = sub.add_parser("extract", help="compute and cache features for a dataset")
    p.add_argument("data", help="folder or .zip")
    p.add_argument("--out", required=True, help="feature store folder")
    _backbone_args(p)
    _run_args(p)

    p = sub.add_parser("fit", help="train a logistic regression on stored features")
    p.add_argument("features", help="feature store folder (from `siirto extract`)")
    p.add_argument("--out", required=True, help="model folder")
    p.add_argument("--backbone", default=None, help="which backbone's features, if the store has several")
    p.add_argument("--test-size", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--C", dest="Cs", default="0.001,0.01,0.1,1,10", help="candidate C values, chosen by 5-fold CV")
    p.add_argument("--group", default=None, help="regular expression on file names: files of one group (frames of a clip, copies of a photo) stay on one side of the split")
    p.add_argument("--no-standardize", action="store_true")

    p = sub.add_parser("evaluate", help="evaluate a model on a dataset's test split (or --split all)")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--out", required=True)
    p.add_argument("--split", choices=["test", "all"], default="test")
    p.add_argument("--store", default=None, help="feature store to use (default: a cache folder)")
    p.add_argument("--weights", dest="weights_file", metavar="FILE")
    _run_args(p)

    p = sub.add_parser("predict", help="classify images with a trained model; CSV out")
    p.add_argument("model")
    p.add_argument("inputs", nargs="+", help="image files, folders or .zip files")
    p.add_argument("--out", default="-", help="CSV file (default: standard output)")
    p.add_argument("--kaggle", action="store_true", help="Dogs vs. Cats submission: id,label with label = P(dog)")
    p.add_argument("--store", default=None)
    p.add_argument("--weights", dest="weights_file", metavar="FILE")
    _run_args(p)

    p = sub.add_parser("run", help="split, extract, fit and evaluate in one go")
    p.add_argument("data", help="folder or .zip")
    p.add_argument("--out", required=True)
    p.add_argument("--test-size", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", default=None, help="feature store (default: OUT/features)")
    p.add_argument("--group", default=None, help="regular expression on file names: files of one group (frames of a clip, copies of a photo) stay on one side of the split")
    p.add_argument("--method", choices=["logreg", "head", "finetune"], default="logreg",
                   help="logreg: LogisticRegression on features; head: new head on a frozen base; "
                        "finetune: also train the top blocks")
    g = p.add_argument_group("logreg")
    g.add_argument("--C", dest="Cs", default="0.001,0.01,0.1,1,10")
    g.add_argument("--no-standardize", action="store_true")
    g = p.add_argument_group("head and finetune")
    g.add_argument("--head", choices=["linear", "mlp"], default="linear")
    g.add_argument("--hidden", type=int, default=512, help="mlp head width")
    g.add_argument("--dropout", type=float, default=0.5, help="mlp head dropout")
    g.add_argument("--epochs", type=int, default=5)
    g.add_argument("--lr", type=float, default=1e-3, help="learning rate of the head")
    g.add_argument("--unfreeze-from", default=None, help="finetune: first trainable block (see `siirto inspect`)")
    g.add_argument("--freeze-through", default=None, help="finetune: freeze up to and including this parameter")
    g.add_argument("--stages", default=None, help="finetune schedule, e.g. head:3,layer4:2,all:1")
    g.add_argument("--lr-decay", type=float, default=0.5, help="learning rate factor per block below the head")
    g.add_argument("--augment", action="store_true", help="random resized crop + horizontal flip")
    g.add_argument("--train-bn", action="store_true", help="let frozen BatchNorm layers update their statistics")
    g.add_argument("--patience", type=int, default=None, help="early stop after this many epochs without improvement")
    g.add_argument("--val-size", type=float, default=0.15, help="validation share of the training images")
    g.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT/checkpoints")
    _backbone_args(p)
    _run_args(p)

    p = sub.add_parser("capture", help="a local webcam page to capture a labelled dataset")
    p.add_argument("--labels", default="rock,paper,scissors", help="comma-separated class names (keys 1-9)")
    p.add_argument("--out", default="data/rps", help="images go to OUT/<label>/*.jpg")
    p.add_argument("--port", type=int, default=8765)

    p = sub.add_parser("live", help="a local webcam page that classifies every frame with MODEL")
    p.add_argument("model")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--device", default=None)

    p = sub.add_parser("export", help="export a trained model to ONNX or TorchScript")
    p.add_argument("model")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("--out", default=None, help="file (default: MODEL/model.onnx or MODEL/model.pt)")
    p.add_argument("--weights", dest="weights_file", metavar="FILE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args) or 0
    except SiirtoError as exc:
        print(f"siirto: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("siirto: interrupted; finished batches are saved, run the same command again to resume", file=sys.stderr)
        return 130


def _cs(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(c) for c in text.split(","))
    except ValueError:
        raise SiirtoError(f"--C takes numbers separated by commas, got {text!r}") from None


def cmd_demo(args) -> int:
    from .demo import make_demo_data
    from .pipeline import run
    from .report import summary

    out = Path(args.out)
    data = out / "data"
    if not data.exists():
        make_demo_data(data, per_class=args.per_class)
        print(f"generated the demo images in {data} (3 classes, plus 2 broken files on purpose)")
    metrics = run(data, out, batch_size=args.batch_size, device=args.device, progress=not args.quiet)
    print(summary(metrics))
    print(f"report: {out}/metrics.json, {out}/confusion_matrix.png" + (f", {out}/worst_errors.png" if metrics["worst_errors"] else ""))
    print(f"model:  {out}/model   (try: siirto predict {out}/model {data}/dots)")
    return 0


def cmd_inspect(args) -> int:
    if args.list:
        print("\n".join(available()))
        return 0
    weights = "default" if args.pretrained else "random"
    net = load_backbone(args.backbone, weights, args.weights_file)
    info = describe(net)
    info["weights_source"] = net.spec.source.get(net.spec.default_weights or "", "")
    info["weights_available"] = list(net.spec.weights)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    pre = info["preprocessing"]
    print(f"{info['backbone']}: {info['params']:,} parameters, features {info['feature_dim']}-d (input of `{info['head']}`)")
    print(f"weights: {', '.join(info['weights_available']) or 'none'}; default from {info['weights_source'] or '-'}"
          + ("" if args.pretrained or args.weights_file else "  (structure shown with random weights)"))
    print(f"preprocessing: resize {pre['resize']} ({pre['interpolation']}), centre crop {pre['crop']}, mean {pre['mean']}, std {pre['std']}")
    print("blocks (in forward order; use these names to freeze/unfreeze):")
    for row in info["blocks"]:
        print(f"  {row['name']:<24} {row['type']:<22} {row['params']:>12,}")
    return 0


def cmd_classify(args) -> int:
    import torch

    from .data import BadImage, dataset_from_paths
    from .extract import features_of_images, load_image

    net = load_backbone(args.backbone, args.weights_id, args.weights_file)
    if not net.has_imagenet_head:
        raise SiirtoError(f"{args.backbone} ({net.weights_id}) has no trained ImageNet head to classify with")
    names = imagenet_categories()
    dataset = dataset_from_paths(args.images)
    for sample in dataset.samples:
        where = dataset.source.display(sample.path)
        try:
            image = load_image(dataset.source, sample.path, net.preprocessing)
        except BadImage as exc:
            print(f"{where}: skipped: {exc}", file=sys.stderr)
            continue
        with torch.inference_mode():
            probs = net.head(torch.from_numpy(features_of_images(net, [image]))).softmax(1)[0]
        top = probs.topk(args.top)
        print(where)
        for p, i in zip(top.values.tolist(), top.indices.tolist()):
            print(f"  {p:6.1%}  {names[i]} ({i})")
    return 0


def cmd_extract(args) -> int:
    from .pipeline import extract_dataset

    net = load_backbone(args.backbone, args.weights_id, args.weights_file)
    dataset, store, result = extract_dataset(args.data, net, args.out, args.batch_size, args.device, not args.quiet)
    print(f"{len(dataset.samples)} images ({dataset.layout}, classes {', '.join(map(str, dataset.classes))}): "
          f"{result.computed} computed, {result.cached} cached, {len(result.skipped)} skipped "
          f"in {result.seconds:.1f} s ({result.images_per_second:.1f} img/s, {result.engine})")
    for s in result.skipped:
        print(f"  skipped {dataset.source.display(s['path'])}: {s['reason']}")
    if dataset.ignored:
        from .report import ignored_line

        print(f"  {ignored_line(dataset.ignored)}")
    print(f"features: {store.dir}")
    return 0


def cmd_fit(args) -> int:
    from .pipeline import fit

    probe, held_out = fit(args.features, args.out, args.backbone, args.test_size, args.seed, _cs(args.Cs),
                          not args.no_standardize, args.group)
    cv = probe.info["cv_accuracy"]
    print(f"trained on {probe.info['n_train']} images ({len(held_out.paths)} held out for testing); "
          f"classes {', '.join(probe.classes)}; C={probe.info['C']}"
          + (f", {probe.info['cv_folds']}-fold CV accuracy {cv:.2%}" if cv is not None else ""))
    print(f"model: {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    from .pipeline import evaluate
    from .report import summary

    metrics = evaluate(args.model, args.data, args.out, args.split, args.store, args.weights_file,
                       args.batch_size, args.device, not args.quiet)
    print(summary(metrics))
    return 0


def cmd_predict(args) -> int:
    from .pipeline import predict

    rows, skipped = predict(args.model, args.inputs, args.store, args.weights_file, args.batch_size, args.device, not args.quiet)
    out = sys.stdout if args.out == "-" else open(args.out, "w", newline="")
    try:
        writer = csv.writer(out)
        if args.kaggle:
            if not rows or "dog" not in rows[0]["probs"]:
                raise SiirtoError("--kaggle needs a model with a 'dog' class")
            writer.writerow(["id", "label"])
            for row in sorted(rows, key=lambda r: _kaggle_id(r["path"])):
                writer.writerow([_kaggle_id(row["path"]), f"{row['probs']['dog']:.6f}"])
        else:
            writer.writerow(["path", "label", "probability"])
            for row in rows:
                writer.writerow([row["path"], row["label"], f"{row['probability']:.6f}"])
    finally:
        if out is not sys.stdout:
            out.close()
    for s in skipped:
        print(f"siirto: skipped {s['path']}: {s['reason']}", file=sys.stderr)
    return 0


def _kaggle_id(path: str) -> int:
    stem = Path(path.split("!")[-1]).name.split(".")[0]
    if not stem.isdigit():
        raise SiirtoError(f"{path}: Kaggle ids come from file names like 123.jpg")
    return int(stem)


def cmd_run(args) -> int:
    from .pipeline import run, train_model
    from .report import summary

    if args.method == "logreg":
        metrics = run(args.data, args.out, args.backbone, args.weights_id, args.weights_file, args.test_size,
                      args.seed, args.store, args.batch_size, args.device, _cs(args.Cs), not args.no_standardize,
                      not args.quiet, args.group)
    else:
        metrics = train_model(
            args.data, args.out, args.method, args.backbone, args.weights_id, args.weights_file, args.head,
            args.hidden, args.dropout, args.epochs, args.stages, args.unfreeze_from, args.freeze_through, args.lr,
            args.lr_decay, args.augment, args.train_bn, args.patience, args.val_size, args.test_size, args.seed,
            args.resume, args.store, args.batch_size, args.device, not args.quiet, group=args.group,
        )
    print(summary(metrics))
    print(f"report: {args.out}/metrics.json, confusion_matrix.png" + (", worst_errors.png" if metrics["worst_errors"] else ""))
    return 0


def _serve_until_interrupted(app, port: int) -> int:
    import time

    from .capture.server import serve

    try:
        server = serve(app, port)
    except OSError as exc:
        raise SiirtoError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); try --port {port + 1}") from None
    print(f"open http://127.0.0.1:{server.server_address[1]}/ in a browser (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
        if app.saver is not None:
            counts = app.saver.counts(app.labels)
            print("saved: " + ", ".join(f"{label} {n}" for label, n in counts.items()) + f" in {app.saver.out}")
    return 0


def cmd_capture(args) -> int:
    from .capture import parse_labels
    from .capture.server import CaptureApp

    return _serve_until_interrupted(CaptureApp(parse_labels(args.labels), args.out), args.port)


def cmd_live(args) -> int:
    from .capture.live import Predictor
    from .capture.server import CaptureApp

    return _serve_until_interrupted(CaptureApp(predictor=Predictor(args.model, args.device)), args.port)


def cmd_export(args) -> int:
    from .export import export

    path = export(args.model, args.format, args.out, args.weights_file)
    print(f"exported {args.format}: {path}")
    return 0


COMMANDS = {
    "demo": cmd_demo, "inspect": cmd_inspect, "classify": cmd_classify, "extract": cmd_extract,
    "fit": cmd_fit, "evaluate": cmd_evaluate, "predict": cmd_predict, "run": cmd_run, "export": cmd_export,
    "capture": cmd_capture, "live": cmd_live,
}

if __name__ == "__main__":
    sys.exit(main())
