"""``lit-colorize serve``: the interactive page on this computer (needs the ``app`` extra).

It binds to 127.0.0.1, so only this computer can open it. ``--host 0.0.0.0`` lets anyone who
can reach this machine on the network upload photos and use its CPU or GPU: there is no
login and no encryption, so do that only on a network you trust.
"""

from __future__ import annotations

import argparse
import ctypes
import socket
from collections.abc import Sequence
from pathlib import Path

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


def main(argv: Sequence[str] | None = None) -> None:
    """Loads the model once, prints the address, and serves until Ctrl+C."""
    args = parse_args(argv)
    return_large_buffers_to_the_system()
    try:
        import uvicorn

        from lit_colorize.app.server import Limits, create_app
    except ImportError as error:
        raise ConfigError(f"lit-colorize serve needs the app extra ({error.name} is missing): pip install -e '.[app]'") from None
    from lit_colorize.colorizer import Colorizer
    from lit_colorize.evaluation import choose_device, positive
    from lit_colorize.pretrained import default_serve_checkpoint

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1..65535, got {args.port}")
    for name in ("max_megapixels", "max_upload_mb"):
        if not getattr(args, name) > 0:
            raise ConfigError(f"--{name} must be a positive number, got {getattr(args, name)}")
    positive("--concurrency", args.concurrency)
    positive("--working_size", args.working_size)
    checkpoint = Path(args.ckpt_path) if args.ckpt_path else default_serve_checkpoint()
    colorizer = Colorizer.from_checkpoint(checkpoint, choose_device(args.device), args.working_size)
    limits = Limits(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 1e6),
        concurrency=args.concurrency,
    )
    app = create_app(colorizer, limits, model_name=checkpoint.name)
    listening = bound_socket(args.host, args.port)  # bound before the address is printed: it answers from then on
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    shown = f"[{shown}]" if ":" in shown else shown  # an IPv6 address in a URL
    print(f"lit-colorize serve: {checkpoint.name} at http://{shown}:{args.port} (Ctrl+C to stop)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"  listening on {args.host}: anyone who can reach this machine can use the page (no login, no https)")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[listening])


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
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
        listening.listen(128)
    except OSError as error:
        listening.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror}); choose another --port or --host") from None
    return listening
