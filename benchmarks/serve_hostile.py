"""A normal user's latency while another page hammers the server with full-size downloads.

Why: a 38 KB PNG of 6300x6300 pixels (under the 40 MP default) costs tens of seconds of CPU to
colorize at full size. Before the server bounded that work, 10 such downloads held it for
minutes and a normal small colorize waited 260 s. This starts ``lit-colorize serve`` as a
user does (127.0.0.1, the shipped hint model, its defaults), then:

1. measures a normal colorize of a real photo's preview on the quiet server;
2. uploads one 6300x6300 photo as an attacker would (retrying while the server is busy), and
   fires ``--hostile`` full-size downloads of it at once;
3. meanwhile colorizes the normal photo again and again for ``--seconds``, one request at a time.

It prints the normal colorize's latency percentiles, quiet and under attack, what each hostile
download got (refused at once, refused after its queue deadline, served, or still running when
the measurement ended), and the verdict: p99 under ``--p99_limit_ms`` while they are attempted.

    python benchmarks/serve_hostile.py | tee docs/app/hostile.txt      # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, like `python -m benchmarks.serve_hostile`

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.common import SHARED_DATA, machine_line, print_verdicts  # noqa: E402
from benchmarks.serve_load import percentiles, post  # noqa: E402
from lit_colorize.app.browser import free_port  # noqa: E402


def hostile_photo(side: int) -> bytes:
    """A ``side`` x ``side`` PNG of a few kB: flat gray blocks compress to almost nothing."""
    blocks = np.random.default_rng(0).integers(0, 256, (side // 300 + 1, side // 300 + 1), dtype=np.uint8)
    pixels = np.kron(blocks, np.ones((300, 300), dtype=np.uint8))[:side, :side]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def upload_until_accepted(base: str, data: bytes, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        try:
            _, answer = post(f"{base}/api/photos", data, "application/octet-stream")
            return json.loads(answer)
        except urllib.error.HTTPError as error:
            if error.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def hostile_download(base: str, photo_id: str, timeout: float, outcomes: list[str]) -> None:
    body = json.dumps({"temperature": 0.8}).encode()
    request = urllib.request.Request(
        f"{base}/api/photos/{photo_id}/download", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
        outcomes.append(f"served in {time.perf_counter() - start:.0f} s")
    except urllib.error.HTTPError as error:
        message = json.loads(error.read()).get("error", "")
        waited = time.perf_counter() - start
        kind = "refused after its queue deadline" if "without starting" in message else "refused at once"
        outcomes.append(f"{error.code} {kind}" + (f" ({waited:.0f} s)" if waited > 1 else ""))
    except (TimeoutError, OSError):
        outcomes.append("running or queued when the measurement ended (then cut off)")


def colorize_times(base: str, photo_id: str, until: float, count: int | None = None) -> list[float]:
    body = json.dumps({"temperature": 0.8, "hints": []}).encode()
    times: list[float] = []
    while (count is None and time.monotonic() < until) or (count is not None and len(times) < count):
        seconds, image = post(f"{base}/api/photos/{photo_id}/colorize", body, "application/json")
        if not image.startswith(b"\x89PNG"):
            raise RuntimeError("the colorization is not a PNG")
        times.append(seconds)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hostile", type=int, default=10, help="full-size downloads fired at once")
    parser.add_argument("--side", type=int, default=6300, help="the hostile photo's side (6300: 39.7 MP)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the normal user colorizes under attack")
    parser.add_argument("--p99_limit_ms", type=float, default=2000.0)
    parser.add_argument("--photo", default=str(sorted((SHARED_DATA / "photos" / "bsds500" / "test").glob("*.jpg"))[0]))
    args = parser.parse_args(argv)

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "lit_colorize.cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        first = server.stdout.readline().strip()
        if "http://127.0.0.1" not in first:
            sys.exit(f"the server did not start: {first} {server.stdout.read()[-2000:]}")
        base = f"http://127.0.0.1:{port}"
        print(machine_line())
        print(f"server: {first}")
        normal = json.loads(post(f"{base}/api/photos", Path(args.photo).read_bytes(), "application/octet-stream")[1])
        colorize_times(base, normal["id"], 0, count=2)  # warm-up
        quiet = colorize_times(base, normal["id"], 0, count=20)
        bomb = hostile_photo(args.side)
        hostile = upload_until_accepted(base, bomb)
        print(f"normal: {Path(args.photo).name} ({normal['width']}x{normal['height']}), colorized one request at a time")
        print(f"hostile: {args.hostile} full-size downloads at once of one {len(bomb) / 1024:.0f} KB PNG of "
              f"{hostile['width']}x{hostile['height']} ({hostile['width'] * hostile['height'] / 1e6:.1f} MP)")  # fmt: skip
        outcomes: list[str] = []
        attackers = [
            threading.Thread(target=hostile_download, args=(base, hostile["id"], args.seconds + 5, outcomes), daemon=True)
            for _ in range(args.hostile)
        ]
        for attacker in attackers:
            attacker.start()
        time.sleep(0.5)  # all of them sent
        attacked = colorize_times(base, normal["id"], time.monotonic() + args.seconds)
        for attacker in attackers:
            attacker.join(timeout=10)
        alive = server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"\n{'colorize':24s} {'count':>5s}   latency ms")
    print(f"{'quiet':24s} {len(quiet):5d}   {percentiles(quiet)}")
    print(f"{'under attack':24s} {len(attacked):5d}   {percentiles(attacked)}")
    print(f"\nthe {args.hostile} hostile downloads, {args.seconds:.0f} s after they were sent:")
    for outcome, count in sorted(Counter(outcomes).items()):
        print(f"  {count:2d} x {outcome}")
    p99 = float(np.percentile(np.asarray(attacked) * 1000, 99))
    verdicts = [
        (f"a normal colorize's p99 under attack is {p99:.0f} ms (< {args.p99_limit_ms:.0f})", p99 < args.p99_limit_ms),
        ("the server still up", alive),
    ]
    return print_verdicts(verdicts)


if __name__ == "__main__":
    sys.exit(main())
