"""A load test of the web page's server over HTTP: ``lit-colorize serve`` as a user starts it,
real photos, several clients at once.

Why: the page must stay up and answer while several people (or tabs) use it, and its memory
must not grow with the number of photos seen (the server keeps the last few uploads only).
This starts the real command on 127.0.0.1 with the default model, then sends ``--requests``
colorizations, ``--parallel`` at a time: each uploads a photo (real photos of
``../shared/data/photos``, every fifth one a large wallpaper; the second half sends the
first half's photos again) and asks for its colorization
and for the suggestions at one pixel, as the page does. It prints the latency percentiles of
each kind of request, the errors, and the server's resident memory (Linux /proc), with verdicts:

* no request failed;
* memory bounded: the highest resident memory seen after a colorization of the second half
  (the same photos as the first) is less than ``--max_growth_mib`` above the first half's (the
  server keeps the last 8 photos; nothing else may accumulate). Sampled after every request,
  because one sample catches transient buffers of large photos by chance (+-150 MiB here).

    python benchmarks/serve_load.py | tee docs/app/load.txt      # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, like `python -m benchmarks.serve_load`

import numpy as np  # noqa: E402

from benchmarks.common import SHARED_DATA, machine_line, print_verdicts  # noqa: E402
from lit_colorize.app.browser import free_port  # noqa: E402


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def post(url: str, body: bytes, content_type: str) -> tuple[float, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        data = response.read()
    return time.perf_counter() - start, data


def one_colorization(base: str, photo: Path) -> dict[str, float]:
    """Upload, colorize at T=0.8, suggestions at the centre: as the page does for a new photo."""
    seconds = {}
    seconds["upload"], data = post(f"{base}/api/photos", photo.read_bytes(), "application/octet-stream")
    uploaded = json.loads(data)
    body = json.dumps({"temperature": 0.8, "hints": []}).encode()
    seconds["colorize"], image = post(f"{base}/api/photos/{uploaded['id']}/colorize", body, "application/json")
    if not image.startswith(b"\x89PNG"):
        raise RuntimeError(f"{photo.name}: the colorization is not a PNG")
    centre = json.dumps({"x": uploaded["width"] // 2, "y": uploaded["height"] // 2, "k": 6}).encode()
    seconds["suggest"], _ = post(f"{base}/api/photos/{uploaded['id']}/suggest", centre, "application/json")
    return seconds


def percentiles(values: list[float]) -> str:
    ms = np.asarray(values) * 1000
    return "  ".join(f"{name} {np.percentile(ms, q):7.0f}" for name, q in (("p50", 50), ("p90", 90), ("p99", 99))) + f"  max {ms.max():7.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="colorizations (each with its upload and suggestions)")
    parser.add_argument("--parallel", type=int, default=4, help="clients at once")
    parser.add_argument("--photos", default=str(SHARED_DATA / "photos" / "bsds500" / "test"))
    parser.add_argument("--large", default=str(SHARED_DATA / "photos" / "large"), help="every fifth photo from here")
    parser.add_argument("--max_growth_mib", type=float, default=100.0)
    parser.add_argument("--ckpt_path", default=None, help="default: the model lit-colorize serve loads by itself")
    args = parser.parse_args(argv)
    small = sorted(Path(args.photos).glob("*.jpg"))
    large = sorted(p for p in Path(args.large).glob("*.jpg") if p.stat().st_size < 8 * 2**20) if Path(args.large).is_dir() else []
    if not small:
        sys.exit(f"no .jpg photos in {args.photos}; give --photos a folder of photos")
    half = args.requests // 2
    # The second half sends the first half's photos again: growth then is memory kept, not a bigger photo's peak.
    first = [large[i // 5 % len(large)] if large and i % 5 == 4 else small[i % len(small)] for i in range(half)]
    photos = first + first + first[: args.requests - 2 * half]

    port = free_port()
    command = [sys.executable, "-m", "lit_colorize.cli", "serve", "--port", str(port)]
    command += ["--ckpt_path", args.ckpt_path] if args.ckpt_path else []
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = server.stdout.readline().strip()
        if "http://127.0.0.1" not in first:
            sys.exit(f"the server did not start: {first} {server.stdout.read()[-2000:]}")
        base = f"http://127.0.0.1:{port}"
        print(machine_line())
        print(f"server: {first}")
        print(f"load: {args.requests} colorizations, {args.parallel} at a time; {len(set(photos))} photos "
              f"({sum(p in large for p in photos)} large); each = upload + colorize (T=0.8) + suggest (k=6)")  # fmt: skip
        one_colorization(base, small[0])  # warm-up: the first call pays for lazy initialisation
        rss = {"after warm-up": resident_mib(server.pid)}
        timings: list[dict[str, float]] = []
        errors: list[str] = []

        samples: list[float] = []  # the server's RSS after each colorization: one instant would catch peaks by chance

        def run(photo: Path) -> None:
            try:
                timings.append(one_colorization(base, photo))
            except (urllib.error.URLError, OSError, RuntimeError, ValueError) as error:
                body = error.read().decode(errors="replace") if isinstance(error, urllib.error.HTTPError) else ""
                errors.append(f"{photo.name}: {error} {body}".strip())
            samples.append(resident_mib(server.pid))

        start = time.perf_counter()
        with ThreadPoolExecutor(args.parallel) as pool:
            list(pool.map(run, photos[:half]))
            first_half = max(samples)
            list(pool.map(run, photos[half:]))
        wall = time.perf_counter() - start
        second_half = max(samples[half:])
        rss["at the end"] = resident_mib(server.pid)
        alive = server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"\n{'request':10s} {'count':>5s}   latency ms")
    for kind in ("upload", "colorize", "suggest"):
        values = [t[kind] for t in timings]
        if values:
            print(f"{kind:10s} {len(values):5d}   {percentiles(values)}")
    whole = [sum(t.values()) for t in timings]
    if whole:
        print(f"{'all three':10s} {len(whole):5d}   {percentiles(whole)}")
    print(f"\n{len(timings)} of {args.requests} colorizations in {wall:.1f} s ({len(timings) / wall:.2f}/s); errors: {len(errors)}")
    for error in errors[:10]:
        print(f"  {error}")
    print("server resident memory, MiB: " + ", ".join(f"{name} {value:.0f}" for name, value in rss.items())
          + f"; highest after a colorization: first half {first_half:.0f}, second half {second_half:.0f}")  # fmt: skip
    growth = second_half - first_half
    verdicts = [
        (f"no request failed, the server still up ({len(errors)} errors)", not errors and alive),
        (f"memory bounded: the second half's highest is {growth:+.0f} MiB from the first's (< {args.max_growth_mib:.0f})",
         growth < args.max_growth_mib),
    ]
    return print_verdicts(verdicts)


if __name__ == "__main__":
    sys.exit(main())
