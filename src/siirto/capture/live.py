"""Classify single camera frames with a saved model of either kind (for `siirto live` and notebook 612)."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..data import BadImage, decode_image
from ..errors import SiirtoError
from ..extract import make_engine, prepare
from ..probe import LinearProbe


class Predictor:
    """``predict(frame_bytes)`` -> label, probability, all probabilities, milliseconds."""

    def __init__(self, model_folder, device: str | None = None):
        from ..pipeline import load_model

        self.classifier, self.backbone = load_model(model_folder, device=device)
        self.classes = self.classifier.classes
        # When the body is the pretrained one (logistic regression, or a head on a frozen base), its
        # features come from the fast engine (ONNX Runtime on the CPU); a fine-tuned body runs in torch.
        head_only = isinstance(self.classifier, LinearProbe) or not self.classifier.spec.body_trained
        self.engine = make_engine(self.backbone, device) if head_only else None

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Prepared uint8 images (N, crop, crop, 3) -> (N, classes)."""
        if self.engine is not None:
            features = self.engine(images)
            if isinstance(self.classifier, LinearProbe):
                return self.classifier.predict_proba(features)
            with torch.inference_mode():
                return self.classifier.model.head.eval()(torch.from_numpy(features)).softmax(1).numpy()
        model = self.classifier.model
        with torch.inference_mode():
            return model(torch.from_numpy(images).to(self.classifier.device)).softmax(1).float().cpu().numpy()

    def predict(self, frame: bytes) -> dict:
        started = time.perf_counter()
        try:
            image = prepare(decode_image(frame, draft_size=self.backbone.preprocessing.resize), self.backbone.preprocessing)
        except BadImage as exc:
            raise SiirtoError(f"frame not usable: {exc}") from None
        p = self.probabilities(image[None])[0]
        best = int(p.argmax())
        return {"label": self.classes[best], "probability": float(p[best]),
                "probs": dict(zip(self.classes, map(float, p))), "ms": round(1000 * (time.perf_counter() - started), 1)}
