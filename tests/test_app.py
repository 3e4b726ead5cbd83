"""The web page's server over HTTP (Starlette's TestClient): what the page asks of it, the
limits it keeps, and the one-line errors it answers with while going on."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette", reason="the page needs the app extra: pip install -e '.[app]'")
from starlette.testclient import TestClient  # noqa: E402

from lit_colorize.app.photos import PREVIEW_SIDE, decode_upload  # noqa: E402
from lit_colorize.app.server import Busy, Limits, ModelGate, create_app, preview_hints  # noqa: E402
from lit_colorize.colorizer import Colorizer  # noqa: E402
from lit_colorize.module import ColorizationModule  # noqa: E402
from tests.helpers import cli_env, console_script  # noqa: E402


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def decoded(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


@pytest.fixture(scope="module")
def pretrained_client() -> TestClient:
    return local_client(create_app(Colorizer.pretrained(), model_name="shipped"))


@pytest.fixture(scope="module")
def guided() -> Colorizer:
    """A hint-taking model with random weights: enough to test the wiring, not the quality."""
    torch.manual_seed(0)
    module = ColorizationModule(hints=True, widths=(8, 16, 32)).eval()
    module.net.color_table.built.fill_(True)
    return Colorizer(module)


@pytest.fixture
def photo_bytes(shared_data: Path) -> bytes:
    return sorted((shared_data / "photos" / "bsds500" / "test").glob("*.jpg"))[0].read_bytes()


def local_client(app) -> TestClient:
    """A client as the page is: at the address the server was started for."""
    return TestClient(app, base_url="http://127.0.0.1:7860")


def send_photo(client: TestClient, data: bytes, **headers: str):
    return client.post("/api/photos", content=data, headers={"Content-Type": "application/octet-stream", **headers})


def upload(client: TestClient, data: bytes) -> dict:
    response = send_photo(client, data)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_page_and_its_script_are_served(pretrained_client: TestClient) -> None:
    page = pretrained_client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
    assert pretrained_client.get("/static/app.js").status_code == 200
    model = pretrained_client.get("/api/model").json()
    assert model == {
        "name": "shipped", "hints": False, "suggestions": True, "working_side": 64,
        "max_upload_bytes": 50 * 2**20, "max_pixels": 40_000_000,
    }  # fmt: skip


def test_a_real_photo_is_shown_gray_and_colorized_at_its_size(pretrained_client: TestClient, photo_bytes: bytes) -> None:
    photo = upload(pretrained_client, photo_bytes)
    assert (photo["width"], photo["height"], photo["had_color"]) == (481, 321, True)
    gray = decoded(pretrained_client.get(f"/api/photos/{photo['id']}/gray.png")).astype(int)
    assert gray.shape == (321, 481, 3)
    assert np.abs(gray - gray[..., :1]).max() <= 1  # neutral: R = G = B
    result = decoded(pretrained_client.post(f"/api/photos/{photo['id']}/colorize", json={"temperature": 0.8}))
    assert result.shape == (321, 481, 3)
    assert np.abs(result.astype(int) - result[..., :1]).mean() > 3  # not gray
    expected = np.asarray(Colorizer.pretrained().colorize(Image.open(io.BytesIO(photo_bytes)), 0.8).convert("RGB"))
    np.testing.assert_array_equal(result, expected)  # what predict gives the same photo


def test_a_large_photo_is_previewed_small_and_downloaded_at_full_size(pretrained_client: TestClient) -> None:
    rng = np.random.default_rng(0)
    big = np.kron(rng.integers(0, 256, (15, 20, 3), dtype=np.uint8), np.ones((100, 100, 1), dtype=np.uint8))  # 2000x1500
    photo = upload(pretrained_client, png(big))
    assert (photo["preview_width"], photo["preview_height"]) == (PREVIEW_SIDE, 768)
    preview = decoded(pretrained_client.post(f"/api/photos/{photo['id']}/colorize", json={}))
    assert preview.shape == (768, PREVIEW_SIDE, 3)
    full = decoded(pretrained_client.post(f"/api/photos/{photo['id']}/download", json={"temperature": 0}))
    assert full.shape == (1500, 2000, 3)


def test_the_temperature_changes_the_result(pretrained_client: TestClient, photo_bytes: bytes) -> None:
    photo_id = upload(pretrained_client, photo_bytes)["id"]
    mode, mean = (
        decoded(pretrained_client.post(f"/api/photos/{photo_id}/colorize", json={"temperature": t})) for t in (0, 1)
    )
    assert np.abs(mode.astype(int) - mean).mean() > 0.5


def test_suggestions_are_the_colorizers_at_that_pixel(pretrained_client: TestClient, photo_bytes: bytes) -> None:
    photo_id = upload(pretrained_client, photo_bytes)["id"]
    answer = pretrained_client.post(f"/api/photos/{photo_id}/suggest", json={"x": 200, "y": 100, "k": 4}).json()
    expected = Colorizer.pretrained().suggest(Image.open(io.BytesIO(photo_bytes)), 200, 100, k=4)
    assert [s["color"] for s in answer] == [s["color"] for s in expected]
    assert [s["probability"] for s in answer] == pytest.approx([s["probability"] for s in expected])


def test_hints_in_photo_pixels_land_on_the_same_spot_of_the_preview() -> None:
    hints = [{"x": 0, "y": 1999, "color": "#ff0000", "size": 9}, {"x": 999.5, "y": 10, "color": "#00ff00"}]
    moved = preview_hints(hints, (0.5, 0.5))  # a 2000-pixel side shown at 1000
    # pixel centres map to pixel centres: (x + 0.5) / side is kept
    assert moved[0] == {"x": -0.25, "y": 999.25, "color": "#ff0000", "size": 4.5}
    assert moved[1] == {"x": 499.5, "y": 4.75, "color": "#00ff00"}
    assert preview_hints([{"x": 3, "y": 3, "color": "#000000", "size": 1}], (0.1, 0.1))[0]["size"] == 1.0  # never below a pixel
    uneven = preview_hints([{"x": 99, "y": 0, "color": "#000000", "size": 10}], (0.5, 0.4))[0]  # sides rounded apart
    assert (uneven["x"], uneven["y"]) == pytest.approx((49.25, -0.3)) and uneven["size"] == pytest.approx(10 * 0.2**0.5)


def test_a_guided_model_colorizes_the_preview_with_the_mapped_hints(guided: Colorizer) -> None:
    client = local_client(create_app(guided))
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8)
    photo_id = upload(client, png(photo))["id"]
    hints = [{"x": 800, "y": 300, "color": "#2a6fdb", "size": 40}]
    shown = decoded(client.post(f"/api/photos/{photo_id}/colorize", json={"temperature": 1, "hints": hints}))
    preview = np.asarray(Image.fromarray(photo).resize((1024, 768), Image.Resampling.LANCZOS))
    scale = 1024 / 1600
    mapped = [{"x": (800 + 0.5) * scale - 0.5, "y": (300 + 0.5) * scale - 0.5, "color": "#2a6fdb", "size": 40 * scale}]
    np.testing.assert_array_equal(shown, guided.colorize(preview, 1.0, mapped))
    unguided = decoded(client.post(f"/api/photos/{photo_id}/colorize", json={"temperature": 1}))
    assert not np.array_equal(shown, unguided)
    full = decoded(client.post(f"/api/photos/{photo_id}/download", json={"temperature": 1, "hints": hints}))
    np.testing.assert_array_equal(full, guided.colorize(photo, 1.0, hints))


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "the upload is empty"),
        (b"just some text\n", 415, "the file is not an image; choose a photo"),
        (png(np.zeros((40, 40, 3), dtype=np.uint8))[:60], 415, "the image cannot be read"),
        (png(np.zeros((300, 400, 3), dtype=np.uint8)), 413, "400x300 = 0.12 MP, over this server's limit of 0.1 MP"),
        (b"x" * 200_001, 413, "the photo is 200,001 bytes, over this server's limit of 200,000 bytes"),
    ],
    ids=["empty", "text", "truncated", "too-many-pixels", "too-many-bytes"],
)
def test_a_bad_upload_gets_one_line_and_the_server_goes_on(body: bytes, status: int, message: str) -> None:
    client = local_client(create_app(Colorizer.pretrained(), Limits(max_pixels=100_000, max_upload_bytes=200_000)))
    response = send_photo(client, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error and "\n" not in error
    assert upload(client, png(np.full((30, 30, 3), 90, dtype=np.uint8)))["width"] == 30  # the next request is served


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("colorize", b"{not json", 400, "the request is not JSON"),
        ("colorize", b"[1, 2]", 400, "the request must be a JSON object"),
        ("colorize", json.dumps({"temperature": -1}).encode(), 400, "temperature must be a finite number between 0"),
        ("colorize", json.dumps({"hints": [{"x": 5, "y": 99, "color": "#ff0000"}]}).encode(), 400,
         "the photo: hint 1 ({'x': 5, 'y': 99, 'color': '#ff0000'}) lies outside the 64x48 photo"),
        ("colorize", json.dumps({"hints": [{"x": 5, "y": 5, "color": "red"}]}).encode(), 400, "color 'red' is not #rrggbb"),
        ("colorize", json.dumps({"hints": [{"x": 1, "y": 1, "color": "#000000"}] * 300}).encode(), 400,
         "300 hints is more than this server's 256"),
        ("suggest", json.dumps({"x": 64, "y": 0}).encode(), 400, "pixel (x=64, y=0) lies outside the 64x48 photo"),
        ("suggest", json.dumps({"x": "a", "y": 0}).encode(), 400, "x and y must be numbers of photo pixels"),
        ("suggest", json.dumps({"x": 1, "y": 0, "k": 0}).encode(), 400, "k must be a whole number from 1 to 24"),
    ],
    ids=["not-json", "not-object", "temperature", "hint-outside", "hint-color", "too-many-hints", "pixel-outside", "pixel-not-number", "k"],
)  # fmt: skip
def test_a_bad_request_names_what_is_wrong(guided: Colorizer, path: str, body: bytes, status: int, message: str) -> None:
    client = local_client(create_app(guided))
    photo_id = upload(client, png(np.full((48, 64, 3), 120, dtype=np.uint8)))["id"]
    response = client.post(f"/api/photos/{photo_id}/{path}", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status and message in response.json()["error"], response.text


def test_hints_for_a_model_without_them_are_refused_plainly(pretrained_client: TestClient) -> None:
    photo_id = upload(pretrained_client, png(np.full((48, 64, 3), 120, dtype=np.uint8)))["id"]
    response = pretrained_client.post(f"/api/photos/{photo_id}/colorize", json={"hints": [{"x": 1, "y": 1, "color": "#ff0000"}]})
    assert response.status_code == 400
    assert response.json()["error"].startswith("this model was trained without hints, so it cannot take them")


def test_only_the_last_uploads_are_kept() -> None:
    client = local_client(create_app(Colorizer.pretrained(), Limits(max_photos=2)))
    ids = [upload(client, png(np.full((20, 20, 3), value, dtype=np.uint8)))["id"] for value in (10, 20, 30)]
    assert client.get(f"/api/photos/{ids[0]}/gray.png").status_code == 404
    assert "upload it again" in client.get(f"/api/photos/{ids[0]}/gray.png").json()["error"]
    assert all(client.get(f"/api/photos/{i}/gray.png").status_code == 200 for i in ids[1:])


def test_the_model_gate_bounds_work_at_once_and_refuses_past_the_queue() -> None:
    gate = ModelGate(concurrency=2, max_waiting=1)
    release, lock = threading.Event(), threading.Lock()
    running, peak = [0], [0]

    def work() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1

    async def main() -> list:
        tasks = [asyncio.ensure_future(gate.run(work)) for _ in range(3)]
        await asyncio.sleep(0.3)  # two run, one waits
        with pytest.raises(Busy):
            await gate.run(work)  # a fourth is one too many
        release.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [None] * 3
    assert peak[0] == 2 and gate.pending == 0


def test_decoding_keeps_exif_orientation_and_16_bit_depth() -> None:
    image = Image.fromarray(np.tile(np.arange(0, 60000, 1000, dtype=np.uint16), (30, 1)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    photo = decode_upload(buffer.getvalue(), max_pixels=10_000)
    assert photo.rgb.shape == (30, 60, 3) and not photo.had_color
    assert photo.rgb[0, -1, 0] == round(59000 / 65535 * 255)  # scaled, not clipped to white
    rotated = Image.fromarray(np.zeros((20, 50, 3), dtype=np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    buffer = io.BytesIO()
    rotated.save(buffer, format="JPEG", exif=exif)
    assert decode_upload(buffer.getvalue(), max_pixels=10_000).size == (20, 50)


@pytest.mark.slow
def test_serve_starts_on_localhost_and_answers(tmp_path: Path) -> None:
    from lit_colorize.app.browser import free_port

    port = free_port()
    server = subprocess.Popen(
        [console_script(), "serve", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env()
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("lit-colorize serve: landscape64_") and f"http://127.0.0.1:{port} (Ctrl+C to stop)" in line
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/model", timeout=30) as response:
            assert json.load(response)["suggestions"] is True
        taken = subprocess.run(
            [console_script(), "serve", "--port", str(port)], capture_output=True, text=True, env=cli_env(), timeout=120
        )
        assert taken.returncode == 1
        assert taken.stderr.strip().splitlines()[-1].startswith(f"lit-colorize serve: error: cannot listen on 127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ckpt_path", "missing.ckpt"], "missing.ckpt"),
        (["--port", "0"], "--port must be 1..65535, got 0"),
        (["--concurrency", "0"], "--concurrency must be a whole number >= 1, got 0"),
        (["--max_megapixels", "-1"], "--max_megapixels must be a positive, finite number, got -1.0"),
        (["--max_upload_mb", "inf"], "--max_upload_mb must be a positive, finite number, got inf"),
    ],
)
def test_serve_options_are_checked_in_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    from lit_colorize.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", *args])
    assert str(exit_info.value).startswith("lit-colorize serve: error: ") and message in str(exit_info.value)
    assert "\n" not in str(exit_info.value)
