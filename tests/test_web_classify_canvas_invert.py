"""The classifier page's "Invert uploads" is for uploads: a drawing on the canvas, light on
dark already, reaches the model the same whatever it says; a model trained on dark-on-light
pictures gets it dark on light."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image
from starlette.testclient import TestClient

from helpers import handwritten_digit
from test_web_app import fake_classifier_run
from neuralab.web import create_app


def drawn(digit: int) -> bytes:
    """A real handwritten digit as the page's 280 x 280 canvas sends it: white strokes on black, PNG."""
    picture, _ = handwritten_digit(digit)
    big = Image.fromarray(picture).resize((200, 200), Image.BILINEAR)
    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    canvas.paste(big.convert("RGBA"), (40, 40))
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()


def test_a_drawing_reaches_the_model_alike_whatever_invert_uploads_says(tmp_path):
    """With "yes" left from an upload, a clear drawn 7 went in inverted (a dark 7 on a light square
    inside the black frame of the centring) and came out an 8."""
    fake_classifier_run(tmp_path / "runs" / "lenet", "lenet5")
    with TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1") as c:
        answers = {invert: c.post("/api/classify", params={"run": "lenet", "source": "canvas", "invert": invert},
                                  content=drawn(7), headers={"content-type": "application/octet-stream"})
                   for invert in ("auto", "yes", "no")}
    assert {k: r.status_code for k, r in answers.items()} == {"auto": 200, "yes": 200, "no": 200}
    seen = {k: r.json()["input"] for k, r in answers.items()}
    assert seen["yes"] == seen["no"] == seen["auto"]
    assert answers["yes"].json()["top"] == answers["auto"].json()["top"]
    # and what the model saw is the drawing, light on dark: its corners black
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(seen["auto"].split(",", 1)[1]))))
    assert pixels[0, 0] == 0 and pixels.max() > 200


def test_a_drawing_reaches_a_model_trained_on_pictures_on_paper_dark_on_light(tmp_path):
    """Such a model (its training pictures' mean light, as digits on paper) got the drawing light on
    dark, the one polarity it never saw, whatever "Invert uploads" said."""
    import json

    run = fake_classifier_run(tmp_path / "runs" / "paper", "lenet5")
    meta = json.loads((run / "model.json").read_text())
    meta["preprocess"]["mean"] = [0.69]
    (run / "model.json").write_text(json.dumps(meta))
    with TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1") as c:
        r = c.post("/api/classify", params={"run": "paper", "source": "canvas"}, content=drawn(7),
                   headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(r.json()["input"].split(",", 1)[1]))))
    assert pixels[0, 0] == 255 and pixels.min() < 55  # white corners, dark strokes
