"""Your own dataset from a webcam, and live prediction: a local page and the saving rules it shares
with notebook 611."""

from .saving import FrameSaver, check_label, parse_labels  # noqa: F401
