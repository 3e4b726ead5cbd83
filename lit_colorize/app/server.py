"""The web page's server: a small Starlette app around one loaded :class:`~lit_colorize.Colorizer`.

Why Starlette and a plain HTML/JS page rather than Gradio: the page needs click coordinates in
the photo's own pixels, hints that can be dragged, recolored and removed, a palette filled from
the model's own distribution and a before/after slider, which a hand-written canvas does
directly and Gradio's components do not; and the core install stays lean (the ``app`` extra
is Starlette and uvicorn, a few hundred kB, against Gradio's hundred-odd MB with its front end).

Requests carry the photo's bytes as the raw body (no multipart parser, no file name, nothing
written to disk) and JSON for the rest. Work on the model runs in worker threads, at most
``concurrency`` at a time on as many dedicated threads; when ``max_waiting`` more are already
queued, a request is answered 503 at once rather than left to pile up. Every error is JSON ``{"error": "..."}`` with a
one-line message the page shows; the server goes on.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lit_colorize.app.photos import Photo, PhotoStore, UploadError, decode_upload, gray_version
from lit_colorize.colorizer import Colorizer
from lit_colorize.errors import UserError, check_temperature
from lit_colorize.user_hints import parse_hints

STATIC = files("lit_colorize.app") / "static"


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_json_bytes: int = 256 * 1024
    max_hints: int = 256
    concurrency: int = 2
    max_waiting: int = 16
    max_photos: int = 8


class Busy(Exception):
    """More requests are waiting for the model than the server queues."""


class ModelGate:
    """Model work on ``concurrency`` dedicated threads, at most ``max_waiting`` calls queued
    behind them; past that :class:`Busy` at once. Always the same few threads, so the memory
    they allocate is reused rather than spread over a growing pool's per-thread arenas; and
    not tied to one event loop."""

    def __init__(self, concurrency: int, max_waiting: int) -> None:
        self._workers = ThreadPoolExecutor(concurrency, thread_name_prefix="lit-colorize-model")
        self._lock = threading.Lock()
        self.concurrency, self.max_waiting = concurrency, max_waiting
        self.pending = 0  # running and waiting

    async def run(self, work: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            if self.pending >= self.max_waiting + self.concurrency:
                raise Busy
            self.pending += 1
        try:
            return await asyncio.wrap_future(self._workers.submit(work, *args))
        finally:
            with self._lock:
                self.pending -= 1


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)  # speed over size on localhost
    return buffer.getvalue()


def preview_point(x: float, y: float, scale: tuple[float, float]) -> tuple[float, float]:
    """A photo pixel -> the preview's, pixel centres to pixel centres (as
    :func:`~lit_colorize.user_hints.working_position` maps them)."""
    return (x + 0.5) * scale[0] - 0.5, (y + 0.5) * scale[1] - 0.5


def preview_hints(hints: Sequence[Mapping[str, Any]], scale: tuple[float, float]) -> list[dict[str, Any]]:
    """Hints in the photo's pixels -> the same hints in the preview's; a patch keeps its share
    of the photo (never under one pixel)."""
    scaled = []
    for hint in hints:
        x, y = preview_point(hint["x"], hint["y"], scale)
        moved = {"x": x, "y": y, "color": hint["color"]}
        if hint.get("size") is not None:
            moved["size"] = max(1.0, hint["size"] * math.sqrt(scale[0] * scale[1]))
        scaled.append(moved)
    return scaled


def create_app(colorizer: Colorizer, limits: Limits = Limits(), model_name: str = "model") -> Starlette:
    """The page and its JSON API for ``colorizer``, which is loaded once and shared."""
    store = PhotoStore(limits.max_photos)
    gate = ModelGate(limits.concurrency, limits.max_waiting)
    net = colorizer.module.net

    async def read_json(request: Request) -> dict[str, Any]:
        body = await _read_body(request, limits.max_json_bytes, "request")
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            raise UploadError("the request is not JSON") from None
        if not isinstance(payload, dict):
            raise UploadError("the request must be a JSON object")
        return payload

    def checked_request(photo: Photo, payload: Mapping[str, Any]) -> tuple[float, list[dict[str, Any]]]:
        temperature = check_temperature(payload.get("temperature", 0.8))
        hints = payload.get("hints") or []
        if hints and not net.hints:
            raise UploadError(
                "this model was trained without hints, so it cannot take them; start lit-colorize serve with "
                "--ckpt_path of a model trained with configs/hints.yaml"
            )
        if isinstance(hints, list) and len(hints) > limits.max_hints:
            raise UploadError(f"{len(hints)} hints is more than this server's {limits.max_hints}")
        width, height = photo.size
        parse_hints(hints, "the photo", height, width)  # errors in the photo's own pixels, as the page shows them
        return temperature, hints

    async def model(request: Request) -> Response:
        return JSONResponse(
            {
                "name": model_name,
                "hints": bool(net.hints),
                "suggestions": bool(net.is_classifier),
                "working_side": int(colorizer.working_size or net.predict_short_side),
                "max_upload_bytes": limits.max_upload_bytes,
                "max_pixels": limits.max_pixels,
            }
        )

    async def upload(request: Request) -> Response:
        data = await _read_body(request, limits.max_upload_bytes, "photo")
        photo = await gate.run(decode_upload, data, limits.max_pixels)
        photo_id = store.add(photo)
        width, height = photo.size
        return JSONResponse(
            {
                "id": photo_id,
                "width": width,
                "height": height,
                "preview_width": int(photo.preview.shape[1]),
                "preview_height": int(photo.preview.shape[0]),
                "had_color": photo.had_color,
            }
        )

    async def gray(request: Request) -> Response:
        photo = store.get(request.path_params["photo_id"])
        data = await gate.run(lambda: png_bytes(gray_version(photo.preview)))
        return Response(data, media_type="image/png")

    async def colorize(request: Request) -> Response:
        photo = store.get(request.path_params["photo_id"])
        temperature, hints = checked_request(photo, await read_json(request))

        def work() -> tuple[bytes, float]:
            start = time.perf_counter()
            colored = colorizer.colorize(photo.preview, temperature, preview_hints(hints, photo.preview_scale))
            return png_bytes(colored), time.perf_counter() - start

        data, seconds = await gate.run(work)
        return Response(data, media_type="image/png", headers={"X-Colorize-Ms": f"{seconds * 1000:.0f}"})

    async def suggest(request: Request) -> Response:
        photo = store.get(request.path_params["photo_id"])
        payload = await read_json(request)
        temperature, hints = checked_request(photo, payload)
        k = payload.get("k", 6)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 24:
            raise UploadError(f"k must be a whole number from 1 to 24, got {k!r}")
        x, y = payload.get("x"), payload.get("y")
        if isinstance(x, bool) or isinstance(y, bool) or not isinstance(x, (int, float)) or not isinstance(y, (int, float)):
            raise UploadError(f"x and y must be numbers of photo pixels, got {x!r}, {y!r}")
        width, height = photo.size
        if not (-0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5):
            raise UploadError(f"pixel (x={x}, y={y}) lies outside the {width}x{height} photo")
        scale = photo.preview_scale
        found = await gate.run(
            colorizer.suggest, photo.preview, *preview_point(x, y, scale), k, temperature, preview_hints(hints, scale)
        )
        return JSONResponse([{"color": s["color"], "probability": s["probability"]} for s in found])

    async def download(request: Request) -> Response:
        photo = store.get(request.path_params["photo_id"])
        temperature, hints = checked_request(photo, await read_json(request))
        data = await gate.run(lambda: png_bytes(colorizer.colorize(photo.rgb, temperature, hints)))
        return Response(data, media_type="image/png")

    async def index(request: Request) -> Response:
        return FileResponse(str(STATIC / "index.html"), headers={"Cache-Control": "no-cache"})

    def answering_errors(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            try:
                return await endpoint(request)
            except UploadError as error:
                return JSONResponse({"error": str(error)}, status_code=error.status)
            except Busy:
                return JSONResponse({"error": "the server is busy with other photos; try again in a moment"}, status_code=503)
            except (UserError, ValueError) as error:  # a bad temperature or hint: the message names it
                return JSONResponse({"error": str(error).splitlines()[0]}, status_code=400)

        return guarded

    routes = [
        Route("/", index),
        Route("/api/model", answering_errors(model)),
        Route("/api/photos", answering_errors(upload), methods=["POST"]),
        Route("/api/photos/{photo_id}/gray.png", answering_errors(gray)),
        Route("/api/photos/{photo_id}/colorize", answering_errors(colorize), methods=["POST"]),
        Route("/api/photos/{photo_id}/suggest", answering_errors(suggest), methods=["POST"]),
        Route("/api/photos/{photo_id}/download", answering_errors(download), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.photos = store
    app.state.gate = gate
    return app


async def _read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadError(_too_large(what, int(declared), limit), status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UploadError(_too_large(what, size, limit), status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(what: str, size: int, limit: int) -> str:
    return f"the {what} is {size / 2**20:.1f} MiB or more, over this server's {limit / 2**20:.1f} MiB limit"
