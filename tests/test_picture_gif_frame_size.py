"""A GIF whose first frame (its image descriptor), not its logical screen, declares more pixels
than allowed is refused naming the size, as one whose screen declares them is: Pillow's GIF
reader makes its bomb check inside its own reading of the frame, so the size is read from the
file's bytes, for the web app and `neuralab predict` alike."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image
from starlette.testclient import TestClient

from neuralab.cli import main
from neuralab.data.pictures import read_image
from neuralab.errors import NeuralabError
from neuralab.web import create_app
from test_web_app import PICTURE, fake_classifier_run


def animation(frame_sides: tuple[int, int] | None = None, at: tuple[int, int] = (0, 0)) -> bytes:
    """A two-frame 16x12 animated GIF as an editor saves it (a global colour table, the looping
    and frame-timing extensions, a comment), its first frame's rectangle, where given, made to
    start at ``at`` and declare ``frame_sides``."""
    frames = [Image.new("P", (16, 12), i) for i in (3, 7)]
    for i, frame in enumerate(frames):
        frame.putpalette([v for c in range(256) for v in (c, 255 - c, (c * 7) % 256)])
        frame.paste(40 + i, (2, 2, 10, 8))
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0,
                   comment=b"drawn by hand " * 30)  # a comment of several sub-blocks before the frame
    gif = bytearray(buf.getvalue())
    if frame_sides is not None:
        first = gif.index(b",\x00\x00\x00\x00\x10\x00\x0c\x00")  # the first descriptor: at 0,0, 16x12
        struct.pack_into("<HHHH", gif, first + 1, *at, *frame_sides)
    return bytes(gif)


@pytest.mark.parametrize("sides, at, named", [((60_000, 60_000), (0, 0), "60000x60000"),
                                              ((40_000, 30_000), (500, 20), "40500x30020")])
def test_the_first_frames_size_is_named_by_the_reader(tmp_path, sides, at, named):
    path = tmp_path / "bomb.gif"
    path.write_bytes(animation(sides, at))
    with pytest.raises(NeuralabError) as e:
        read_image(path)
    assert str(e.value) == (f"{path}: {named} pixels is more than the 40,000,000 allowed (too large to decode "
                            "safely); resize it first")


def test_a_gif_as_saved_reads_as_before(tmp_path):
    path = tmp_path / "ok.gif"
    path.write_bytes(animation())
    assert read_image(path, "L").shape == (12, 16)


def test_the_web_app_names_the_frames_size(tmp_path):
    fake_classifier_run(tmp_path / "runs" / "done", "mlp")
    with TestClient(create_app(tmp_path / "runs"), base_url="http://127.0.0.1") as c:
        for path in ("/api/upload", "/api/classify?run=done"):
            r = c.post(path, content=animation((60_000, 60_000)), headers=PICTURE)
            assert (r.status_code, r.json()["error"]) == (400, "upload: 60000x60000 pixels is more than the "
                                                               "16,000,000 allowed (too large to decode safely); "
                                                               "resize it first"), path


def test_neuralab_predict_names_the_frames_size(tmp_path, capsys):
    run = fake_classifier_run(tmp_path / "runs" / "done", "mlp")
    bomb = tmp_path / "bomb.gif"
    bomb.write_bytes(animation((60_000, 60_000)))
    assert main(["predict", str(run), str(bomb)]) == 2
    assert capsys.readouterr().err.strip() == (f"neuralab: error: {bomb}: 60000x60000 pixels is more than the "
                                               "40,000,000 allowed (too large to decode safely); resize it first")
