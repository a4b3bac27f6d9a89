"""siirto: transfer learning on images -- pretrained features, your classes."""

__version__ = "0.1.0"

from .backbones import DEFAULT_BACKBONE, Backbone, available, load_backbone, register  # noqa: E402
from .data import BadImage, find_images, train_test_split  # noqa: E402
from .errors import SiirtoError  # noqa: E402
from .pipeline import evaluate, extract_dataset, fit, predict, run  # noqa: E402
from .probe import ImageFeatures, LinearProbe, fit_probe  # noqa: E402
from .store import FeatureStore  # noqa: E402

__all__ = [
    "DEFAULT_BACKBONE", "Backbone", "BadImage", "FeatureStore", "ImageFeatures", "LinearProbe", "SiirtoError",
    "available", "evaluate", "extract_dataset", "find_images", "fit", "fit_probe", "load_backbone", "predict",
    "register", "run", "train_test_split",
]
