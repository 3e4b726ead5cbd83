"""``lit-colorize serve``: the interactive page on this computer (needs the ``app`` extra).

It binds to 127.0.0.1, so only this computer can open it. ``--host 0.0.0.0`` lets anyone who
can reach this machine on the network upload photos and use its CPU or GPU: there is no
login and no encryption, so do that only on a network you trust.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lit_colorize.app.guard import ip_of, is_loopback, is_wildcard
from lit_colorize.errors import ConfigError

DEFAULT_PORT = 7860  # the port ML demo pages conventionally use (Gradio's)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lit-colorize serve", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", default=None,
                        help="a lit-colorize checkpoint (.ckpt); default: the shipped model (with hints where shipped)")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if there is one)")
    parser.add_argument("--working_size", type=int, default=None, help="the network's shorter side (default: training size)")
    parser.add_argument("--max_megapixels", type=float, default=40.0, help="largest photo accepted (default 40)")
    parser.add_argument("--max_upload_mb", type=float, default=50.0, help="largest upload accepted, in MiB (default 50)")
    parser.add_argument("--concurrency", type=int, default=2, help="photos worked on at once (default 2)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """One-line errors for option values that cannot work, before anything is loaded."""
    from lit_colorize.evaluation import positive

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1..65535, got {args.port}")
    for name in ("max_megapixels", "max_upload_mb"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"--{name} must be a positive, finite number, got {value}")
    positive("--concurrency", args.concurrency)
    positive("--working_size", args.working_size)


def page_address(host: str, port: int) -> tuple[str, bool]:
    """(the URL to open, whether others on the network can reach it): a wildcard address
    (0.0.0.0, ::, 0) is opened as this computer's loopback; loopback is 127.0.0.0/8, ::1 and localhost."""
    shown = host
    if is_wildcard(host):
        shown = "::1" if ":" in host else "127.0.0.1"
    shown = f"[{shown}]" if ":" in shown else shown  # an IPv6 address in a URL
    return f"http://{shown}:{port}", not is_loopback(host)


def main(argv: Sequence[str] | None = None) -> None:
    """Checks the options and the port, loads the model once, prints the address, and serves until Ctrl+C."""
    args = parse_args(argv)
    return_large_buffers_to_the_system()
    try:
        import uvicorn  # noqa: F401

        from lit_colorize.app.server import Limits, create_app
    except ImportError as error:
        raise ConfigError(f"lit-colorize serve needs the app extra ({error.name} is missing): pip install -e '.[app]'") from None
    from lit_colorize.colorizer import Colorizer
    from lit_colorize.evaluation import choose_device
    from lit_colorize.pretrained import default_serve_checkpoint

    check_args(args)
    listening = bound_socket(args.host, args.port)  # before the model's load, which takes a while: a taken port is said at once
    try:
        checkpoint = Path(args.ckpt_path) if args.ckpt_path else default_serve_checkpoint()
        colorizer = Colorizer.from_checkpoint(checkpoint, choose_device(args.device), args.working_size)
    except BaseException:
        listening.close()
        raise
    limits = Limits(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 1e6),
        concurrency=args.concurrency,
    )
    app = create_app(colorizer, limits, model_name=checkpoint.name, host=args.host)
    url, exposed = page_address(args.host, args.port)
    print(f"lit-colorize serve: {checkpoint.name} at {url} (Ctrl+C to stop)", flush=True)
    if exposed:
        print(f"  listening on {args.host}: anyone who can reach this machine can use the page (no login, no https)")
    server_for(app).run(sockets=[listening])


@dataclass(frozen=True)
class Timeouts:
    """How long a connection may take: its request line and headers (``header_seconds``, from
    the connection or the previous answer), and the idle time between keep-alive requests.
    A body's own deadline is :attr:`~lit_colorize.app.server.Limits.body_seconds`."""

    header_seconds: float = 10.0
    keep_alive_seconds: float = 5.0
    max_connections: int = 64
    max_header_bytes: int = 16 * 1024


def server_for(app: Any, timeouts: Timeouts = Timeouts(), **config: Any) -> Any:
    """A uvicorn server for ``app`` with the page's timeouts: h11, with ``header_seconds`` to send
    a request's headers, a keep-alive timeout, a header size limit, and at most
    ``max_connections`` connections and requests at once (503 beyond)."""
    import uvicorn

    settings = uvicorn.Config(
        app,
        http=timed_protocol(timeouts.header_seconds),
        timeout_keep_alive=max(1, math.ceil(timeouts.keep_alive_seconds)),
        limit_concurrency=timeouts.max_connections,
        h11_max_incomplete_event_size=timeouts.max_header_bytes,
        log_level="warning",
        **config,
    )
    return uvicorn.Server(settings)


def timed_protocol(header_seconds: float) -> type:
    """uvicorn's h11 protocol, closing a connection whose request headers have not all arrived
    within ``header_seconds`` of its opening or of its previous answer (uvicorn has no such
    deadline: 300 slow-header connections were held open indefinitely)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimedProtocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.arm_header_deadline()

        def arm_header_deadline(self) -> None:
            self.header_cycle = self.cycle
            self.header_deadline = self.loop.call_later(header_seconds, self.headers_too_slow)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.header_deadline is not None and self.cycle is not self.header_cycle:  # a request's headers came
                self.header_deadline.cancel()
                self.header_deadline = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            idle = self.cycle is None or self.cycle.response_complete  # not already on a pipelined request
            if idle and not self.transport.is_closing():
                self.arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.header_deadline is not None:
                self.header_deadline.cancel()
            super().connection_lost(exc)

        def headers_too_slow(self) -> None:
            self.header_deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderTimedProtocol


def return_large_buffers_to_the_system(threshold: int = 4 << 20) -> bool:
    """With glibc, have buffers over ``threshold`` bytes mapped on their own and unmapped when
    freed. By default glibc raises that threshold to the largest buffer freed so far (up to
    32 MB), after which a large photo's pixels come from the heap and stay there: a server that
    decodes photos of many sizes then grows towards the worst mix it has seen. False where
    this is not glibc (nothing changes there)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold = -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, threshold))


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``, or a one-line error (not uvicorn's traceback)
    when the port is taken or the address is not this machine's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if ip_of(host) is not None and ":" not in host:
        host = str(ip_of(host))  # the short forms a URL allows: 0 is 0.0.0.0
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
        listening.listen(128)
    except OSError as error:
        listening.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror}); choose another --port or --host") from None
    return listening
