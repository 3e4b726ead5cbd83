"""The web page's server: a small Starlette app around one loaded :class:`~lit_colorize.Colorizer`.

Why Starlette and a plain HTML/JS page rather than Gradio: the page needs click coordinates in
the photo's own pixels, hints that can be dragged, recolored and removed, a palette filled from
the model's own distribution and a before/after slider, which a hand-written canvas does
directly and Gradio's components do not; and the core install stays lean (the ``app`` extra
is Starlette and uvicorn, a few hundred kB, against Gradio's hundred-odd MB with its front end).

Requests carry the photo's bytes as the raw body (no multipart parser, no file name, nothing
written to disk) and JSON for the rest. A model trained with global hints also takes a reference
photo (uploaded as a photo is, within the same limits; :mod:`lit_colorize.app.references`) or a
palette of colors with weights, as the whole photo's colors. :mod:`lit_colorize.app.guard` decides whom the server
answers. The work each request may cause is bounded (:class:`Limits`):

* uploads: at most ``max_uploads`` bodies read at once (503 beyond, before reading), each
  within ``body_seconds`` and ``max_upload_bytes``;
* model work runs on two gates of dedicated threads: previews, suggestions and small uploads
  on ``concurrency`` threads with ``max_waiting`` queued; full-size downloads and the decoding
  of photos over ``large_pixels`` on ``large_concurrency`` with ``large_waiting`` queued, so a
  few large requests cannot hold up everyone's previews. Past a queue, 503 at once; a request
  that waits longer than its ``queue_seconds`` is answered 503 and its work is never started;
* work whose client has gone (a closed tab, the page's Cancel) is stopped between strips.

Every error is JSON ``{"error": "..."}`` with a one-line message the page shows, values echoed
cut short and limits printed exactly; an unexpected one is logged here with its traceback and
answered 500; the server goes on.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from torch import Tensor

from lit_colorize.app.guard import RequestGuard, TrustedHosts, echo
from lit_colorize.app.photos import (
    Photo,
    PhotoStore,
    UploadError,
    allow_pillow_pixels,
    decode_upload,
    exactly,
    gray_version,
    photo_size,
)
from lit_colorize.app.references import Reference, read_reference
from lit_colorize.colorizer import Colorizer
from lit_colorize.errors import UserError, check_temperature
from lit_colorize.fullres import between_strips
from lit_colorize.user_hints import MAX_HINTS, parse_hints

STATIC = files("lit_colorize.app") / "static"
#: The bin colors a suggestion shows when the page asks for the model's own decoding (mode-to-mean T).
SUGGESTION_TEMPERATURE = 0.8
NO_GLOBAL_HINTS = (
    "this model was trained without global hints, so it cannot take a reference photo or palette; start lit-colorize serve "
    "with --ckpt_path of a model trained with global_hints: true"
)
REFERENCE_GONE = "this reference photo is no longer on the server (it keeps the last few); choose it again"
log = logging.getLogger("lit_colorize.app")


@dataclass(frozen=True)
class Limits:
    """What one request, and all of them together, may ask of the server."""

    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_json_bytes: int = 256 * 1024
    max_hints: int = MAX_HINTS
    concurrency: int = 2
    max_waiting: int = 16
    queue_seconds: float = 20.0
    large_pixels: int = 12_000_000  # more than a 12 MP phone photo
    large_concurrency: int = 1
    large_waiting: int = 1
    large_queue_seconds: float = 60.0
    max_uploads: int = 4
    body_seconds: float = 30.0
    max_photos: int = 8
    max_references: int = 8


class Busy(Exception):
    """More requests are waiting for the model than the server queues, or one waited too long."""

    def __init__(self, message: str = "the server is busy with other photos; try again in a moment") -> None:
        super().__init__(message)


class Abandoned(Exception):
    """Work nobody waits for any more (its client went away, or it waited past its deadline)."""


class Disconnected(Exception):
    """The client closed the connection: nothing to answer, nothing to log."""


class _Job:
    """One call's state, shared by the waiting request and the worker thread."""

    def __init__(self) -> None:
        self.started = self.abandoned = self.released = False

    def check(self, done: int = 0, total: int = 0) -> None:
        if self.abandoned:
            raise Abandoned


class ModelGate:
    """Model work on ``concurrency`` dedicated threads, at most ``max_waiting`` calls queued
    behind them; past that :class:`Busy` at once, and :class:`Busy` too for a call not started
    within ``queue_seconds`` (it is then skipped). A call whose awaiting task is cancelled (its
    client left) is skipped, or stopped between strips of full-resolution work. Always the same
    few threads, so the memory they allocate is reused rather than spread over a growing pool's
    per-thread arenas; and not tied to one event loop."""

    def __init__(self, concurrency: int, max_waiting: int, queue_seconds: float = math.inf) -> None:
        self._workers = ThreadPoolExecutor(concurrency, thread_name_prefix="lit-colorize-model")
        self._lock = threading.Lock()
        self.concurrency, self.max_waiting, self.queue_seconds = concurrency, max_waiting, queue_seconds
        self.pending = 0  # running and waiting
        self.abandoned = 0  # calls skipped or stopped: their client left or their deadline passed

    def _release(self, job: _Job) -> None:
        with self._lock:
            if not job.released:
                job.released = True
                self.pending -= 1

    def _abandon(self, job: _Job, unless_started: bool = False) -> bool:
        """Stop ``job``: skipped if not started (its place is free at once), else stopped at its
        next strip; with ``unless_started`` a started job is left to finish. True if abandoned."""
        with self._lock:
            if unless_started and job.started:
                return False
            job.abandoned = True
            self.abandoned += 1
            if not job.started and not job.released:
                job.released = True
                self.pending -= 1
            return True

    async def run(self, work: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            if self.pending >= self.max_waiting + self.concurrency:
                raise Busy
            self.pending += 1
        job = _Job()

        def call() -> Any:
            with self._lock:
                if job.abandoned:
                    raise Abandoned
                job.started = True
            with between_strips(job.check):
                return work(*args)

        future = self._workers.submit(call)
        future.add_done_callback(lambda _: self._release(job))
        waiting = asyncio.wrap_future(future)
        try:
            timeout = None if math.isinf(self.queue_seconds) else self.queue_seconds
            done, _ = await asyncio.wait({waiting}, timeout=timeout)
            if not done and self._abandon(job, unless_started=True):
                waiting.cancel()
                raise Busy(
                    f"the server is busy: this request waited {exactly(self.queue_seconds)} s without starting; "
                    "try again in a moment"
                )
            return await waiting
        except asyncio.CancelledError:
            self._abandon(job)
            waiting.cancel()
            raise


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


def is_number(value: Any) -> bool:
    """A JSON number: not a string that looks like one, not ``true``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def mebibytes(size: int) -> str:
    return f"{exactly(size / 2**20)} MiB" if size % 1024 == 0 else f"{size:,} bytes"


def parse_json(body: bytes) -> dict[str, Any]:
    """A request's JSON object; :class:`UploadError` for anything else (NaN and Infinity, which
    Python's parser would take, are not JSON; nesting too deep for it is refused, not a crash)."""

    def no_constants(name: str) -> None:
        raise UploadError(f"the request is not JSON ({name} is not a JSON number)")

    try:
        payload = json.loads(body or b"{}", parse_constant=no_constants)
    except RecursionError:
        raise UploadError("the request nests JSON too deeply") from None
    except ValueError as error:
        if isinstance(error, UploadError):
            raise
        raise UploadError("the request is not JSON") from None
    if not isinstance(payload, dict):
        raise UploadError("the request must be a JSON object")
    return payload


async def until_disconnected(request: Request, every: float = 0.2) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(every)


async def unless_disconnected(request: Request, work: Awaitable[Any]) -> Any:
    """``work``'s result; if the client disconnects first, ``work`` is cancelled (so the gate
    stops it) and :class:`Disconnected` raised."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if not task.done():
        task.cancel()
        raise Disconnected
    return task.result()


class UploadSlots:
    """At most ``limit`` upload bodies read (and decoded) at once, so memory held in bodies is
    bounded by ``limit`` x the upload limit before any body is read; past that, :class:`Busy`."""

    def __init__(self, limit: int) -> None:
        self.limit, self.taken = limit, 0

    def __enter__(self) -> UploadSlots:
        if self.taken >= self.limit:
            raise Busy(f"the server is reading {self.limit} other uploads; try again in a moment")
        self.taken += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.taken -= 1


def create_app(
    colorizer: Colorizer, limits: Limits = Limits(), model_name: str = "model", host: str = "127.0.0.1"
) -> Starlette:
    """The page and its JSON API for ``colorizer``, which is loaded once and shared, answering
    to the host names of a server started with ``--host host`` (:class:`~lit_colorize.app.guard.TrustedHosts`)."""
    allow_pillow_pixels(limits.max_pixels)
    store: PhotoStore[Photo] = PhotoStore(limits.max_photos)
    references: PhotoStore[Reference] = PhotoStore(limits.max_references, REFERENCE_GONE)
    gate = ModelGate(limits.concurrency, limits.max_waiting, limits.queue_seconds)
    large = ModelGate(limits.large_concurrency, limits.large_waiting, limits.large_queue_seconds)
    uploads = UploadSlots(limits.max_uploads)
    net = colorizer.module.net

    async def read_json(request: Request) -> dict[str, Any]:
        return parse_json(await read_body(request, limits.max_json_bytes, "request", limits.body_seconds))

    def global_hint(payload: Mapping[str, Any]) -> Tensor | None:
        """The request's global hint vector: an uploaded reference's (by id) or a palette's; None without."""
        reference, palette, weights = payload.get("reference"), payload.get("palette"), payload.get("weights")
        if reference is None and palette is None and weights is None:
            return None
        if not net.global_hints:
            raise UploadError(NO_GLOBAL_HINTS)
        if reference is None:
            return colorizer.global_hint(palette=palette, weights=weights)  # a bad palette: its one-line GlobalHintError
        if palette is not None or weights is not None:
            raise UploadError("give a reference photo or a palette (with its weights), not both")
        if not isinstance(reference, str):
            raise UploadError(f"reference must be the id of an uploaded reference photo, got {echo(reference)}")
        return references.get(reference).vector

    def checked_request(photo: Photo, payload: Mapping[str, Any]) -> tuple[float | None, list[dict[str, Any]], Tensor | None]:
        temperature = payload.get("temperature")  # null or absent: the model's own decoding
        if temperature is not None:
            if not is_number(temperature):
                raise UploadError(f"temperature must be a number from 0 to 10, or null for the model's own decoding, got {echo(temperature)}")
            temperature = check_temperature(temperature)
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
        return temperature, hints, global_hint(payload)

    async def model(request: Request) -> Response:
        return JSONResponse(
            {
                "name": model_name,
                "hints": bool(net.hints),
                "global_hints": bool(net.global_hints),
                "suggestions": bool(net.is_classifier),
                "decoding": net.decodings_for(None)[0].as_hparam(),  # what a request without a temperature gets
                "working_side": int(colorizer.working_size or net.predict_short_side),
                "max_upload_bytes": limits.max_upload_bytes,
                "max_pixels": limits.max_pixels,
            }
        )

    async def upload(request: Request) -> Response:
        with uploads:
            data = await read_body(request, limits.max_upload_bytes, "photo", limits.body_seconds)
            width, height = photo_size(data, limits.max_pixels)
            decoding = large if width * height > limits.large_pixels else gate
            photo = await unless_disconnected(request, decoding.run(decode_upload, data, limits.max_pixels))
        photo_id = store.add(photo)
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

    async def reference_upload(request: Request) -> Response:
        """A reference photo, under the photo's limits; refused before its body is read by a model
        without global hints."""
        if not net.global_hints:
            raise UploadError(NO_GLOBAL_HINTS)
        what = "reference photo"
        with uploads:
            data = await read_body(request, limits.max_upload_bytes, what, limits.body_seconds)
            width, height = photo_size(data, limits.max_pixels, what)
            decoding = large if width * height > limits.large_pixels else gate
            reference = await unless_disconnected(
                request, decoding.run(lambda: read_reference(colorizer, decode_upload(data, limits.max_pixels, what)))
            )
        return JSONResponse({"id": references.add(reference), "width": width, "height": height, "swatches": reference.swatches})

    async def gray(request: Request) -> Response:
        photo = store.get(request.path_params["photo_id"])
        data = await gate.run(lambda: png_bytes(gray_version(photo.preview)))
        return Response(data, media_type="image/png")

    async def colorize(request: Request) -> Response:
        photo = store.get(request.path_params["photo_id"])
        temperature, hints, vector = checked_request(photo, await read_json(request))

        def work() -> tuple[bytes, float]:
            start = time.perf_counter()
            colored = colorizer.colorize(photo.preview, temperature, preview_hints(hints, photo.preview_scale), global_hint=vector)
            return png_bytes(colored), time.perf_counter() - start

        data, seconds = await unless_disconnected(request, gate.run(work))
        return Response(data, media_type="image/png", headers={"X-Colorize-Ms": f"{seconds * 1000:.0f}"})

    async def suggest(request: Request) -> Response:
        photo = store.get(request.path_params["photo_id"])
        payload = await read_json(request)
        temperature, hints, vector = checked_request(photo, payload)
        k = payload.get("k", 6)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 24:
            raise UploadError(f"k must be a whole number from 1 to 24, got {echo(k)}")
        x, y = payload.get("x"), payload.get("y")
        if not is_number(x) or not is_number(y):
            raise UploadError(f"x and y must be numbers of photo pixels, got {echo(x)}, {echo(y)}")
        width, height = photo.size
        if not (-0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5):
            raise UploadError(f"pixel (x={echo(x)}, y={echo(y)}) lies outside the {width}x{height} photo")
        scale = photo.preview_scale
        found = await unless_disconnected(
            request,
            gate.run(
                colorizer.suggest, photo.preview, *preview_point(x, y, scale), k, SUGGESTION_TEMPERATURE if temperature is None else temperature,
                preview_hints(hints, scale), vector,
            ),
        )
        return JSONResponse([{"color": s["color"], "probability": s["probability"]} for s in found])

    async def download(request: Request) -> Response:
        photo = store.get(request.path_params["photo_id"])
        temperature, hints, vector = checked_request(photo, await read_json(request))
        data = await unless_disconnected(
            request, large.run(lambda: png_bytes(colorizer.colorize(photo.rgb, temperature, hints, global_hint=vector)))
        )
        return Response(data, media_type="image/png")

    async def index(request: Request) -> Response:
        return FileResponse(str(STATIC / "index.html"), headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/", index),
        Route("/api/model", answering_errors(model)),
        Route("/api/photos", answering_errors(upload), methods=["POST"]),
        Route("/api/references", answering_errors(reference_upload), methods=["POST"]),
        Route("/api/photos/{photo_id}/gray.png", answering_errors(gray)),
        Route("/api/photos/{photo_id}/colorize", answering_errors(colorize), methods=["POST"]),
        Route("/api/photos/{photo_id}/suggest", answering_errors(suggest), methods=["POST"]),
        Route("/api/photos/{photo_id}/download", answering_errors(download), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestGuard, hosts=TrustedHosts(host))],
        exception_handlers={Exception: internal_error},
    )
    app.state.photos = store
    app.state.references = references
    app.state.gate = gate
    app.state.large_gate = large
    app.state.uploads = uploads
    return app


def answering_errors(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """``endpoint`` with every failure answered as one line of JSON; a disconnect is answered to nobody."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except UploadError as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        except Busy as error:
            return JSONResponse({"error": str(error)}, status_code=503)
        except (Disconnected, ClientDisconnect):  # a closed tab or the page's Cancel: a normal event
            log.debug("%s %s: the client went away", request.method, request.url.path)
            return Response(status_code=499)
        except (UserError, ValueError) as error:  # a bad temperature or hint: the message names it
            return JSONResponse({"error": str(error).splitlines()[0]}, status_code=400)
        except Exception as error:  # noqa: BLE001 - a bug: logged whole here, one line to the client
            return await internal_error(request, error)

    return guarded


async def internal_error(request: Request, error: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=error)
    message = f"the server failed on this request ({type(error).__name__}); its terminal shows the details"
    return JSONResponse({"error": message}, status_code=500)


async def read_body(request: Request, limit: int, what: str, seconds: float = math.inf) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes, and with 408
    when it has not arrived within ``seconds``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadError(_too_large(what, int(declared), limit, exact=True), status=413)

    async def gather() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise UploadError(_too_large(what, size, limit, exact=False), status=413)
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(gather(), None if math.isinf(seconds) else seconds)
    except asyncio.TimeoutError:
        raise UploadError(f"the {what} did not arrive within {exactly(seconds)} s; send it again", status=408) from None


def _too_large(what: str, size: int, limit: int, exact: bool) -> str:
    if exact:
        return f"the {what} is {size:,} bytes, over this server's limit of {mebibytes(limit)}"
    return f"the {what} is larger than this server's limit of {mebibytes(limit)}"
