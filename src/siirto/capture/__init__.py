"""Your own dataset from a webcam, and live prediction: a local page and the saving rules it shares
with notebook 611."""

from .saving import FrameSaver, check_label, parse_labels  # noqa: F401


def explain_camera_error(message: str) -> str:
    """A browser's camera error (getUserMedia's message) in plain words, with what to do."""
    text = (message or "").lower()
    if not text:
        return ""
    if any(k in text for k in ("permission", "notallowed", "denied")):
        return "Camera permission was denied. Allow the camera for this page in the browser, then reload."
    if any(k in text for k in ("not found", "notfound", "requested device", "no camera")):
        return "No camera was found. Plug one in (or close the lid-camera privacy switch) and reload."
    if any(k in text for k in ("could not start", "notreadable", "in use", "busy")):
        return "The camera is busy in another program (a video call?). Close it and reload."
    if any(k in text for k in ("undefined", "getusermedia", "secure", "https")):
        return "The camera only works on pages served from localhost, 127.0.0.1 or https. Open the notebook there."
    return f"The camera could not start: {message}"
