"""Chroma upsampling, measured apart from any model: the true ab of a photo, area-averaged
down by a factor (as a network's output map is), then brought back to full resolution by
bilinear resizing, guided upsampling (lit_colorize.guided; radius, eps) and joint bilateral
upsampling (Kopf et al. 2007, written here for the comparison).

    python -m benchmarks.upsampling                       # BSDS500 val (100 photos), factors 8 and 20
    python -m benchmarks.upsampling --photos DIR --factors 8 --limit 20
    python -m benchmarks.upsampling --model --photos CORPUS --files_from docs/upsampling/tuning_photos.txt

Why this protocol: it isolates the upsampling. Whatever the network predicts, it predicts at
low resolution; the best an upsampler can do is to put the true low-resolution chroma back
where the photo's own L says it belongs. Printed per method: ab RMSE against the true
full-resolution ab, the share of pixels off by more than 10 ab units, and time per
megapixel, side by side in one run. It tunes on BSDS500 *val* (a held-out split of our own),
never on the test photos the model card reports.

``--model``: what a user gets. The ab to upsample is the shipped model's prediction (annealed
mean T=0.38, working size 64), not the true chroma; the errors are still against the true
full-resolution ab, with the PSNR of the rendered photo beside. A wrong prediction is blotchy;
the guided filter's window averaging smooths the blotches while keeping the edges, which is
what the defaults were chosen for (docs/upsampling/tuning_photos.txt: 80 of the corpus's
*training* photos, which the shipped model never saw and no table reports).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.common import SHARED_DATA, machine_line
from lit_colorize.color import lab_to_rgb, rgb_to_lab
from lit_colorize.files import image_files
from lit_colorize.guided import DEFAULT_EPS, DEFAULT_RADIUS, guided_upsample, low_resolution_guide
from lit_colorize.imageio import load_rgb

Upsampler = Callable[[Tensor, Tensor], Tensor]


def joint_bilateral_upsample(
    lightness: Tensor, ab_small: Tensor, radius: int = 2, sigma_space: float = 1.0, sigma_range: float = 10.0
) -> Tensor:
    """Joint bilateral upsampling (Kopf et al. 2007): each full-resolution pixel averages the
    low-resolution ab in a (2r+1)^2 window, weighted by distance (in low-resolution pixels) and
    by how close the window pixel's L* is to its own. L* (H, W), ab (2, h, w) -> (2, H, W)."""
    height, width = lightness.shape
    h, w = ab_small.shape[-2:]
    guide = low_resolution_guide(lightness, (h, w))
    ys = (torch.arange(height) + 0.5) * (h / height) - 0.5
    xs = (torch.arange(width) + 0.5) * (w / width) - 0.5
    total = torch.zeros(2, height, width)
    weights = torch.zeros(height, width)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            qy, qx = (ys.round() + dy).clamp(0, h - 1), (xs.round() + dx).clamp(0, w - 1)
            spatial = torch.exp(-((qy - ys)[:, None] ** 2 + (qx - xs)[None] ** 2) / (2 * sigma_space**2))
            rows, cols = qy.long(), qx.long()
            weight = spatial * torch.exp(-((lightness - guide[rows][:, cols]) ** 2) / (2 * sigma_range**2))
            total += weight[None] * ab_small[:, rows][:, :, cols]
            weights += weight
    return total / weights.clamp_min(1e-12)[None]


def methods(grid: bool) -> dict[str, Upsampler]:
    found: dict[str, Upsampler] = {
        "bilinear": lambda l, ab: F.interpolate(ab[None], size=l.shape, mode="bilinear", align_corners=False)[0],
        "joint bilateral r1 sr5": lambda l, ab: joint_bilateral_upsample(l, ab, 1, 1.0, 5.0),
        "joint bilateral r2 sr10": lambda l, ab: joint_bilateral_upsample(l, ab, 2, 1.0, 10.0),
    }
    settings = [(r, e) for r in (1, 2, 3) for e in (4.0, 10.0, 100.0)] if grid else [(DEFAULT_RADIUS, DEFAULT_EPS)]
    for radius, eps in settings:
        found[f"guided r{radius} eps{eps:g}"] = lambda l, ab, r=radius, e=eps: guided_upsample(l, ab, r, e)
    return found


def true_chroma(factor: int) -> Callable[[Tensor, Tensor], Tensor]:
    """The low-resolution ab of the truth protocol: the true ab area-averaged down by ``factor``."""

    def small(lightness: Tensor, ab: Tensor) -> Tensor:
        height, width = lightness.shape
        return F.adaptive_avg_pool2d(ab[None], (max(1, height // factor), max(1, width // factor)))[0]

    return small


def model_prediction(working_size: int = 64) -> Callable[[Tensor, Tensor], Tensor]:
    """The low-resolution ab of ``--model``: the shipped model's prediction from the photo's L."""
    from lit_colorize.colorizer import module_from_checkpoint
    from lit_colorize.fullres import network_input, working_size as network_size
    from lit_colorize.options import DecodingChoice
    from lit_colorize.pretrained import pretrained_checkpoint

    net = module_from_checkpoint(pretrained_checkpoint()).net.eval()

    def small(lightness: Tensor, ab: Tensor) -> Tensor:
        l_norm = network_input(lightness, network_size(*lightness.shape, working_size, net.size_multiple))
        return net.predict_ab(l_norm, [DecodingChoice("annealed_mean", 0.38)])[0][0]

    return small


def measure(
    photos: list[Path], low_resolution: Callable[[Tensor, Tensor], Tensor], upsamplers: dict[str, Upsampler]
) -> dict[str, tuple[float, float, float, float]]:
    """method -> (ab RMSE, share of pixels off by > 10, seconds per megapixel, median PSNR of the photo)."""
    squared = dict.fromkeys(upsamplers, 0.0)
    far = dict.fromkeys(upsamplers, 0.0)
    seconds = dict.fromkeys(upsamplers, 0.0)
    psnr: dict[str, list[float]] = {name: [] for name in upsamplers}
    pixels = 0
    for path in photos:
        rgb = load_rgb(path)
        lab = rgb_to_lab(rgb)
        lightness, ab = lab[0], lab[1:]
        height, width = lightness.shape
        small = low_resolution(lightness, ab)
        for name, upsample in upsamplers.items():  # interleaved per photo: a background load weighs on all alike
            start = time.perf_counter()
            out = upsample(lightness, small)
            seconds[name] += time.perf_counter() - start
            error = torch.linalg.vector_norm(out - ab, dim=0)
            squared[name] += float(error.square().sum())
            far[name] += float((error > 10).sum())
            rendered = lab_to_rgb(torch.cat([lightness[None], out])).clamp(0, 1).mul(255).round().div(255)
            psnr[name].append(-10 * math.log10(max(float((rendered - rgb.float() / 255).square().mean()), 1e-10)))
        pixels += height * width
    return {
        name: ((squared[name] / pixels) ** 0.5, far[name] / pixels, seconds[name] / pixels * 1e6, statistics.median(psnr[name]))
        for name in upsamplers
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=SHARED_DATA / "photos" / "bsds500" / "val")
    parser.add_argument("--factors", type=int, nargs="+", default=[8, 20])
    parser.add_argument("--limit", type=int, default=None, help="at most this many photos")
    parser.add_argument("--no_grid", action="store_true", help="only the default guided setting")
    parser.add_argument("--model", action="store_true", help="upsample the shipped model's prediction, not the true chroma")
    parser.add_argument("--files_from", type=Path, default=None, help="a list of photos relative to --photos")
    args = parser.parse_args(argv)
    if args.files_from:
        names = [line.strip() for line in args.files_from.read_text().splitlines() if line.strip() and not line.startswith("#")]
        photos = [args.photos / name for name in names][: args.limit]
    else:
        photos = image_files(args.photos)[: args.limit]
    torch.set_grad_enabled(False)
    print(machine_line())
    upsamplers = methods(grid=not args.no_grid)
    if args.model:  # the joint bilateral's cost and quality are measured by the truth protocol: left out here
        upsamplers = {name: fn for name, fn in upsamplers.items() if not name.startswith("joint")}
        print(f"{len(photos)} photos from {args.photos}; the shipped model's ab (annealed mean T=0.38, working size 64) upsampled")
        protocols = {"model, working size 64": model_prediction(64)}
    else:
        print(f"{len(photos)} photos from {args.photos}; the true ab area-averaged down by each factor, then upsampled")
        protocols = {f"factor {factor}": true_chroma(factor) for factor in args.factors}
    for label, low_resolution in protocols.items():
        results = measure(photos, low_resolution, upsamplers)
        base = results["bilinear"]
        print(f"\n{label:25} ab RMSE   off >10   PSNR median   s/MP   time vs bilinear")
        for name, (rmse, off, per_mp, psnr) in results.items():
            print(f"{name:25} {rmse:9.3f} {off:9.4f} {psnr:13.2f} {per_mp:7.3f}   {per_mp / base[2]:5.2f}x")


if __name__ == "__main__":
    main()
