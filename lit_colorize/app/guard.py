"""What the page's server trusts, checked before any route, static files included.

A server on 127.0.0.1 is reachable from every web page the user opens, so the address alone
protects nothing. Like Jupyter (its host allowlist, lifted only by ``allow_remote_access``)
and Gradio, the server refuses:

* a ``Host`` it was not started for (DNS rebinding: a hostile name rebound to 127.0.0.1 makes
  the browser treat the page as that name's own): allowed are loopback addresses, ``localhost``
  and the ``--host`` value; with a wildcard ``--host`` (0.0.0.0, ::) also any IP address and
  this machine's names, since an IP address cannot be rebound;
* a request from another origin: an ``Origin`` that is not the server's own, or a
  ``Sec-Fetch-Site`` other than ``same-origin``/``none`` (a top-level visit of the page itself
  excepted; its framing is refused by the headers below);
* a body of the wrong type: JSON endpoints take ``application/json`` and uploads an image type
  or ``application/octet-stream``, so that a cross-site request needs a CORS preflight, which
  carries an ``Origin`` and is refused.

Every answer gets headers against framing and sniffing, and a Content-Security-Policy that
runs only the page's own script files (the page has no inline script, and must keep it so).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WILDCARD_HOSTS = ("0.0.0.0", "::", "0", "")
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
UPLOAD_PATHS = ("/api/photos", "/api/references")  # the photo, and a reference photo for its colors
UPLOAD_TYPES = ("image/", "application/octet-stream")
SHOWN_CHARS = 40


def echo(value: Any) -> str:
    """A client's value for an error line, as JSON (``null``, not Python's ``None``), cut to
    about :data:`SHOWN_CHARS` characters."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 1]}…"


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header or an origin's authority, without port or IPv6 brackets,
    lower case, without a trailing dot (``localhost.`` is ``localhost``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def ip_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address, also in the short forms a socket accepts (``0``, ``127.1``); else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_wildcard(host: str) -> bool:
    address = ip_of(host)
    return host in WILDCARD_HOSTS or (address is not None and address.is_unspecified)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this computer only: ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    address = ip_of(host_name(host))
    return host_name(host) == "localhost" or (address is not None and address.is_loopback)


class TrustedHosts:
    """The ``Host`` values a server started with ``--host bind`` answers to."""

    def __init__(self, bind: str = "127.0.0.1") -> None:
        self.bind = host_name(bind)
        self.wildcard = is_wildcard(bind)
        self.names = {"localhost", self.bind}
        if self.wildcard:
            self.names |= {socket.gethostname().lower(), socket.getfqdn().lower()}

    def allows(self, host_header: str) -> bool:
        host = host_name(host_header)
        if host in self.names or is_loopback(host):
            return True
        return self.wildcard and strict_ip(host)

    def __str__(self) -> str:
        shown = "127.0.0.1, localhost, [::1]"
        if self.bind not in ("127.0.0.1", "localhost", "::1") and not self.wildcard:
            shown += f", {self.bind}"
        return shown + (", this machine's IP addresses and name" if self.wildcard else "")


def strict_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def refusal(scope: Scope, hosts: TrustedHosts) -> tuple[int, str] | None:
    """(status, one-line reason) for a request the server must not answer, or None."""
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
    host = headers.get("host", "")
    if not hosts.allows(host):
        return 400, f"this server answers to {hosts} only, not to the host {echo(host)} (a page of another site?)"
    origin = headers.get("origin")
    if origin is not None and origin.lower() != f"{scope.get('scheme', 'http')}://{host}".lower():
        return 403, f"requests from other web pages are refused (origin {echo(origin)})"
    site = headers.get("sec-fetch-site")
    visit = scope["method"] == "GET" and headers.get("sec-fetch-mode") == "navigate" and scope["path"] == "/"
    if site not in (None, "same-origin", "none") and not visit:
        return 403, f"requests from other web pages are refused (Sec-Fetch-Site {echo(site)})"
    if scope["method"] == "POST":
        return content_type_refusal(scope["path"], headers.get("content-type", ""))
    return None


def content_type_refusal(path: str, content_type: str) -> tuple[int, str] | None:
    media = content_type.split(";", 1)[0].strip().lower()
    if path in UPLOAD_PATHS:
        if not media.startswith(UPLOAD_TYPES):
            return 415, f"an upload is sent as image/* or application/octet-stream, not {echo(media)}"
    elif media != "application/json":
        return 415, f"this request is sent as application/json, not {echo(media)}"
    return None


class RequestGuard:
    """Pure ASGI middleware: :func:`refusal` before anything else runs, and
    :data:`SECURITY_HEADERS` on every answer."""

    def __init__(self, app: ASGIApp, hosts: TrustedHosts) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.lower().encode() not in names]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        refused = refusal(scope, self.hosts)
        if refused is None:
            await self.app(scope, receive, send_with_headers)
            return
        status, reason = refused
        body = json.dumps({"error": reason}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send_with_headers({"type": "http.response.start", "status": status, "headers": headers})
        await send_with_headers({"type": "http.response.body", "body": body})
