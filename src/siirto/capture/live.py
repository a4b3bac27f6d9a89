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
        # A logistic regression needs features: the fast engine (ONNX Runtime on the CPU).
        self.engine = make_engine(self.backbone, device) if isinstance(self.classifier, LinearProbe) else None

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Prepared uint8 images (N, crop, crop, 3) -> (N, classes)."""
        if self.engine is not None:
            return self.classifier.predict_proba(self.engine(images))
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
