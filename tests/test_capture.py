"""Capturing a dataset: label safety, atomic non-overwriting saves, the HTTP API, and the
notebook's save-each-frame-once rule (fed frames directly, no camera needed)."""

from __future__ import annotations

import base64
import http.client
import io
import json
import random
import threading

import pytest
from PIL import Image

from siirto.capture.saving import MAX_FRAME_BYTES, FrameSaver, check_label, parse_labels
from siirto.capture.server import CaptureApp, serve
from siirto.errors import SiirtoError

from conftest import colour_image


def _jpeg(seed=0, fmt="JPEG") -> bytes:
    buf = io.BytesIO()
    colour_image("red", random.Random(seed), size=(64, 48)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("bad", ["", "  ", "../x", "a/b", "/etc", "..", "a\\b", "x..y", "?*", "é" * 3])
def test_bad_labels_are_refused(bad):
    with pytest.raises(SiirtoError):
        check_label(bad)


def test_good_labels_and_lists():
    assert check_label(" rock ") == "rock" and check_label("beanie-2.0") == "beanie-2.0"
    assert parse_labels("glasses,cap,beanie") == ["glasses", "cap", "beanie"]
    with pytest.raises(SiirtoError, match="repeat"):
        parse_labels("a,a")


def test_saves_are_unique_and_atomic(tmp_path):
    saver = FrameSaver(tmp_path)
    frame = _jpeg()
    threads = [threading.Thread(target=saver.save, args=(frame, "rock")) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = sorted((tmp_path / "rock").iterdir())
    assert len(files) == 20 and all(f.read_bytes() == frame for f in files)  # nothing overwritten, no temp left
    png = saver.save(_jpeg(1, "PNG"), "paper")
    assert png.suffix == ".jpg" and Image.open(png).format == "JPEG"
    assert saver.counts(["rock", "paper", "scissors"]) == {"rock": 20, "paper": 1, "scissors": 0}
    with pytest.raises(SiirtoError, match="not saved: not an image"):
        saver.save(b"hello", "rock")


def test_notebook_rule_each_frame_once_under_the_label_it_was_taken_with(tmp_path):
    """marimo re-runs the saving cell when the frame *or* the label changes."""
    saver = FrameSaver(tmp_path)
    first = "data:image/jpeg;base64," + base64.b64encode(_jpeg(1)).decode()
    second = "data:image/jpeg;base64," + base64.b64encode(_jpeg(2)).decode()
    assert saver.save_new(first, "rock") is not None      # a new frame: saved under rock
    assert saver.save_new(first, "paper") is None         # label changed, same frame: not saved again
    assert saver.save_new(second, "paper") is not None    # the next frame: under paper
    assert saver.save_new("", "paper") is None            # no frame yet
    assert saver.counts() == {"paper": 1, "rock": 1}


@pytest.fixture
def server(tmp_path):
    app = CaptureApp(["rock", "paper"], tmp_path / "out")
    srv = serve(app, port=0)
    yield srv, app
    srv.shutdown()


def _request(srv, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    conn.request(method, path, body=body, headers={"Content-Type": "image/jpeg", **(headers or {})})
    response = conn.getresponse()
    payload = json.loads(response.read() or b"{}") if response.getheader("Content-Type", "").startswith("application/json") else None
    return response.status, payload


def test_server_listens_on_loopback_only(server):
    srv, _ = server
    assert srv.server_address[0] == "127.0.0.1"
    with pytest.raises(SiirtoError, match="only listens on this computer"):
        serve(CaptureApp(["a"], None), port=0, host="0.0.0.0")


def test_capture_api(server, tmp_path):
    srv, app = server
    status, body = _request(srv, "POST", "/api/capture?label=rock", _jpeg())
    assert status == 200 and body["counts"] == {"rock": 1, "paper": 0} and body["saved"].startswith("rock/")
    for path, data, headers, code, message in [
        ("/api/capture?label=..%2Fx", _jpeg(), {}, 400, "not a plain name"),
        ("/api/capture?label=%2Fetc", _jpeg(), {}, 400, "not a plain name"),
        ("/api/capture?label=", _jpeg(), {}, 400, "empty label"),
        ("/api/capture?label=scissors", _jpeg(), {}, 400, "unknown label"),
        ("/api/capture?label=rock", b"GIF89a but not really", {}, 400, "not an image"),
        ("/api/capture?label=rock", b"x", {"Content-Type": "text/plain"}, 415, "only images"),
        ("/api/capture?label=rock", _jpeg(), {"Host": "evil.example:80"}, 403, "127.0.0.1"),
    ]:
        status, body = _request(srv, "POST", path, data, headers)
        assert status == code and message in body["error"], (path, status, body)
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    conn.putrequest("POST", "/api/capture?label=rock")  # declares a too-big body; refused before reading it
    conn.putheader("Content-Type", "image/jpeg")
    conn.putheader("Content-Length", str(MAX_FRAME_BYTES + 1))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413 and "limit" in json.loads(response.read())["error"]
    assert app.saver.counts() == {"rock": 1}
    written = [p.relative_to(tmp_path).parts[:2] for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [("out", "rock")]  # nothing escaped the output folder, nothing else was written
    status, body = _request(srv, "POST", "/api/predict", _jpeg())
    assert status == 400 and "no model loaded" in body["error"]
    status, page = _request(srv, "GET", "/")
    assert status == 200


def test_capture_command_refuses_bad_labels(tmp_path, capsys):
    from siirto.cli import main

    assert main(["capture", "--labels", "rock,../x", "--out", str(tmp_path / "d")]) == 2
    assert "not a plain name" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
