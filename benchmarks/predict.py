"""Full-resolution prediction on the CPU: seconds per megapixel and peak memory, per photo.

Why: a user colorizes photos of any size, up to tens of megapixels. Full-resolution work
(L of the photo, ab upsampled to its size, Lab -> RGB) runs in strips of about a megapixel
(``lit_colorize.fullres``); this prints, side by side and per photo, that against the same
code with one strip for the whole image (what a plain ``F.interpolate`` + ``lab_to_rgb``
does), each photo in a fresh process so that its peak resident memory is its own:

    python -m benchmarks.predict                          # ../shared/data/photos/large
    python -m benchmarks.predict --photos a.jpg b.png --ckpt_path best.ckpt

Without ``--ckpt_path`` the model is the thesis's 128x128 U-Net (16-...-256, 324 bins)
with random weights and a bin table of bin centers: speed and memory do not depend on the
weights. Times: decode (torchvision.io/Pillow), colorize (L, network at the working size,
upsampling, Lab -> RGB), encode (PNG, level 6, in memory).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch

from benchmarks.common import REPO_ROOT, SHARED_DATA, machine_line, timed

WHOLE_IMAGE = 1 << 62


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def measure_one(photo: Path, strip_pixels: int, ckpt_path: str | None, working_size: int, threads: int) -> dict:
    """Runs in its own process: colorize ``photo`` once after a warm-up on a small image."""
    import numpy as np
    from PIL import Image

    from lit_colorize import fullres
    from lit_colorize.colorizer import module_from_checkpoint
    from lit_colorize.imageio import read_image
    from lit_colorize.module import ColorizationModule
    from lit_colorize.unet import PRESETS

    torch.set_num_threads(threads)
    fullres.STRIP_PIXELS = strip_pixels
    module = module_from_checkpoint(ckpt_path) if ckpt_path else ColorizationModule(widths=PRESETS["thesis128"]).eval()
    net = module.net
    net.colorize_photo(torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8), [0.8], working_size)  # warm-up
    before = resident_mb()

    decode, decoded = timed(lambda: read_image(photo))
    with torch.no_grad():
        colorize, (colored,) = timed(
            lambda: fullres.colorize_full_resolution(
                decoded.rgb, net.predict_ab, [0.8], working_size, net.size_multiple, strip_pixels
            )
        )
    rgb = colored.permute(1, 2, 0).numpy()
    encode, _ = timed(lambda: Image.fromarray(np.ascontiguousarray(rgb)).save(io.BytesIO(), format="PNG", compress_level=6))
    height, width = decoded.rgb.shape[-2:]
    return {
        "size": f"{width}x{height}", "megapixels": height * width / 1e6, "decode": decode, "colorize": colorize,
        "encode": encode, "resident_before_mb": before, "peak_mb": peak_mb(),
    }  # fmt: skip


def run_worker(photo: Path, strip_pixels: int, args: argparse.Namespace) -> dict:
    """``measure_one`` in a fresh process of this module. The repository goes on its PYTHONPATH
    (so ``-m benchmarks.predict`` imports from any folder) and the working folder stays, so
    relative photo and checkpoint paths still resolve."""
    command = [sys.executable, "-m", "benchmarks.predict", "--worker", str(photo), "--strip-pixels", str(strip_pixels),
               "--working-size", str(args.working_size), "--threads", str(args.threads)]  # fmt: skip
    if args.ckpt_path:
        command += ["--ckpt_path", args.ckpt_path]
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"worker for {photo} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_folder = SHARED_DATA / "photos" / "large"
    parser.add_argument("--photos", nargs="*", default=None, help=f"photo files (default: every file in {default_folder})")
    parser.add_argument("--ckpt_path", default=None)
    parser.add_argument("--working-size", type=int, default=128, help="shorter side the network sees")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--strip-pixels", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure_one(Path(args.worker), args.strip_pixels, args.ckpt_path, args.working_size, args.threads)))
        return
    from lit_colorize.fullres import STRIP_PIXELS

    photos = [Path(p) for p in args.photos] if args.photos else sorted(p for p in default_folder.glob("*") if p.is_file())
    if not photos:
        sys.exit(f"no photos: pass --photos, or put photos in {default_folder}")
    print("lit-colorize full-resolution predict, CPU")
    print(machine_line(torch.device("cpu")))
    model = args.ckpt_path or "thesis128 U-Net (16-...-256, 324 bins), random weights"
    print(f"settings: {model}; working size {args.working_size}; T=0.8; {args.threads} threads; one process per photo and mode")
    print("(a) strips of ~1 megapixel (lit-colorize); (b) one strip for the whole image")
    print(f"{'':<34}{'':>10}{'':>6}{'colorize s/MP':>16}{'total s/MP':>12}{'peak RSS MB':>18}")
    print(f"{'photo':<34}{'size':>10}{'MP':>6}{'a':>8}{'b':>8}{'a':>12}{'a':>8}{'b':>8}{'b/a':>6}")
    sums = {key: {"colorize": 0.0, "total": 0.0, "megapixels": 0.0, "peak": 0.0} for key in "ab"}
    last: dict = {}
    for photo in photos:
        results = {"a": run_worker(photo, STRIP_PIXELS, args), "b": run_worker(photo, WHOLE_IMAGE, args)}
        for key, result in results.items():
            sums[key]["colorize"] += result["colorize"]
            sums[key]["total"] += result["decode"] + result["colorize"] + result["encode"]
            sums[key]["megapixels"] += result["megapixels"]
            sums[key]["peak"] = max(sums[key]["peak"], result["peak_mb"])
        a, b = results["a"], results["b"]
        print(
            f"{photo.name[:33]:<34}{a['size']:>10}{a['megapixels']:>6.1f}"
            f"{a['colorize'] / a['megapixels']:>8.3f}{b['colorize'] / b['megapixels']:>8.3f}"
            f"{(a['decode'] + a['colorize'] + a['encode']) / a['megapixels']:>12.3f}"
            f"{a['peak_mb']:>8.0f}{b['peak_mb']:>8.0f}{b['peak_mb'] / a['peak_mb']:>5.1f}x"
        )
        last = a
    a, b = sums["a"], sums["b"]
    print(
        f"all photos: colorize (a) {a['colorize'] / a['megapixels']:.3f} s/MP, (b) {b['colorize'] / b['megapixels']:.3f} s/MP "
        f"(b/a {b['colorize'] / a['colorize']:.2f}); with decode and PNG encode (a) {a['total'] / a['megapixels']:.3f} s/MP; "
        f"peak RSS (a) {a['peak']:.0f} MB, (b) {b['peak']:.0f} MB"
    )
    print(
        f"last photo, (a): decode {last['decode']:.2f} s, colorize {last['colorize']:.2f} s, PNG encode {last['encode']:.2f} s; "
        f"resident before the photo (Python, torch, the model) {last['resident_before_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
