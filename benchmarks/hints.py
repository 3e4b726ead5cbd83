"""User-guided colorization: quality against the number of hints (Zhang et al. 2017's sweep).

The protocol of colorization-pytorch's ``test_sweep.py``: held-out photos; for each N, N hints
drawn from the ground truth (square patches of the truth's mean ab, placed as their sampler
places them, "normal" around the centre); PSNR, AuC and rebalanced AuC of the result against
the truth. Here at each photo's own resolution through predict's path (the network sees L and
the hints at its working size; ab is upsampled and joined with the photo's own L).

Their patch is 6x6 at a 256 px network input. This project's models see 64 px, where a 6x6
patch covers 16 times the share of the image: the sweep runs with 6x6 as they did, and with
2x2, about the same share of the image as theirs (``--patches 6 2``).

Rows: the hint model at each N; the hint-free model (same recipe and budget) at N = 0; two
ceilings that no number of hints can pass through this network's output: the truth's own ab
at the output resolution, and that ab put in its bin and decoded as the model's bins are. Also
the share of pixels whose true bin is among the model's top 6 suggestions (``suggest``).

    python benchmarks/hints.py --hint_ckpt logs/lit-colorize/<run>/checkpoints/last.ckpt \\
        | tee docs/hints/benchmark.txt          # the shipped model is the hint-free row
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import REPO_ROOT, machine_line

HELD_OUT = REPO_ROOT / "docs" / "model" / "heldout_landscape.txt"
COUNTS = (0, 1, 2, 5, 10, 20, 50, 100)
PUBLISHED = {0: 24.43, 1: 25.37, 5: 27.39, 10: 28.42, 50: 30.42, 100: 31.13}  # resources/psnrs_siggraph.npy, ImageNet 256^2
TOP_K = 6


def photos(every: int) -> list[Path]:
    """Every ``every``-th photo of the held-out list (its paths are relative to the repository)."""
    lines = [line.strip() for line in HELD_OUT.read_text(encoding="utf-8").splitlines()]
    listed = [REPO_ROOT / line for line in lines if line and not line.startswith("#")]
    missing = [path for path in listed if not path.is_file()]
    if missing:
        raise SystemExit(f"{len(missing)} held-out photos missing, e.g. {missing[0]} (../shared/data beside the checkout)")
    return listed[::every]


def truth_at(ab: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The truth's ab (1, 2, H, W) at another size, area-averaged (antialiased bilinear)."""
    return F.interpolate(ab, size=size, mode="bilinear", align_corners=False, antialias=True)


def sweep(net, paths: list[Path], counts: tuple[int, ...], patch: int, temperature: float, seed: int) -> dict[int, dict[str, float]]:
    """Per N: AuC, AuC rebalanced and PSNR (mean over photos) of the model with N hints."""
    from lit_colorize.evaluation import RowScores, Truth
    from lit_colorize.fullres import network_input, render, working_size
    from lit_colorize.hints import random_hints_from_truth
    from lit_colorize.imageio import load_rgb
    from lit_colorize.metrics import colorfulness

    prior = net.color_table.counts if net.is_classifier else None
    rows = {n: RowScores(net.grid_size, prior, torch.device("cpu")) for n in counts}
    for index, path in enumerate(paths):
        rgb = load_rgb(path)
        truth = Truth.of(rgb)
        truth_cf = float(colorfulness(truth.rgb)[0])
        size = working_size(*truth.lightness.shape, net.predict_short_side, net.size_multiple)
        l_norm = network_input(truth.lightness, size)
        ab_small = truth_at(truth.ab, size)
        for n in counts:
            hints = None
            if n:
                generator = torch.Generator().manual_seed(seed * 1_000_003 + index * 1009 + n)
                hint_ab, mask = random_hints_from_truth(ab_small, n, patch=patch, generator=generator)
                hints = torch.cat([hint_ab, mask], dim=1)
            with torch.no_grad():
                ab = net.predict_ab(l_norm, [temperature], hints)[0][0]
            rows[n].update(render(truth.lightness, ab), truth, truth_cf)
    return {n: scores.summary() for n, scores in rows.items()}


def ceilings(net, paths: list[Path], temperature: float) -> dict[str, dict[str, float]]:
    """What any number of perfect hints could reach at most, through this network's output:
    "output", the truth's own ab at the output resolution (its logits are 1/``output_stride``
    of the working size), upsampled as predict does; "bins", that ab put in its bin and decoded
    at ``temperature`` as the model's most likely bin is (a classifier's output is one of its
    bins' colors per pixel)."""
    from lit_colorize.bins import ab_to_bin
    from lit_colorize.evaluation import RowScores, Truth
    from lit_colorize.fullres import network_input, render, working_size
    from lit_colorize.imageio import load_rgb
    from lit_colorize.metrics import colorfulness

    prior = net.color_table.counts if net.is_classifier else None
    scores = {name: RowScores(net.grid_size, prior, torch.device("cpu")) for name in ("output", "bins")}
    for path in paths:
        truth = Truth.of(load_rgb(path))
        truth_cf = float(colorfulness(truth.rgb)[0])
        size = working_size(*truth.lightness.shape, net.predict_short_side, net.size_multiple)
        with torch.no_grad():
            out_size = tuple(net(network_input(truth.lightness, size)).shape[-2:])
        ab = truth_at(truth.ab, out_size)
        scores["output"].update(render(truth.lightness, ab[0]), truth, truth_cf)
        if net.is_classifier:
            bins = net.class_of_bin[ab_to_bin(ab, net.grid_size)]
            scores["bins"].update(render(truth.lightness, net.color_table.decode_bins(bins, temperature)[0]), truth, truth_cf)
    return {name: row.summary() for name, row in scores.items() if name == "output" or net.is_classifier}


def suggestion_recall(net, paths: list[Path], k: int = TOP_K) -> float:
    """The share of pixels (at the network's output resolution) whose true bin is among the k
    most probable bins the model predicts with no hint: how often ``suggest``'s palette holds
    the right color at the first click."""
    from lit_colorize.bins import ab_to_bin
    from lit_colorize.evaluation import Truth
    from lit_colorize.fullres import network_input, working_size
    from lit_colorize.imageio import load_rgb

    hits = total = 0
    for path in paths:
        truth = Truth.of(load_rgb(path))
        size = working_size(*truth.lightness.shape, net.predict_short_side, net.size_multiple)
        with torch.no_grad():
            logits = net(network_input(truth.lightness, size))
        true_bins = net.class_of_bin[ab_to_bin(truth_at(truth.ab, tuple(logits.shape[-2:])), net.grid_size)]
        top = logits.topk(k, dim=1).indices  # (1, k, h, w)
        hits += int((top == true_bins[:, None]).any(dim=1).sum())
        total += true_bins.numel()
    return hits / total


def example_picture(net, path: Path, counts: tuple[int, ...], patch: int, temperature: float, out: Path) -> None:
    """The photo (gray), the automatic result, then with 1, 5 and 20 hints drawn as dots, and the truth."""
    from PIL import Image, ImageDraw

    from lit_colorize.evaluation import Truth
    from lit_colorize.fullres import network_input, render, working_size
    from lit_colorize.hints import draw_patches, random_hints_from_truth, sweep_sampling
    from lit_colorize.imageio import load_rgb

    rgb = load_rgb(path)
    truth = Truth.of(rgb)
    height, width = truth.lightness.shape
    size = working_size(height, width, net.predict_short_side, net.size_multiple)
    l_norm = network_input(truth.lightness, size)
    ab_small = truth_at(truth.ab, size)
    panels = [Image.fromarray(truth.gray().permute(1, 2, 0).numpy())]
    for n in counts:
        hints = None
        if n:
            hint_ab, mask = random_hints_from_truth(ab_small, n, patch=patch, generator=torch.Generator().manual_seed(n))
            hints = torch.cat([hint_ab, mask], dim=1)
        with torch.no_grad():
            ab = net.predict_ab(l_norm, [temperature], hints)[0][0]
        panel = Image.fromarray(render(truth.lightness, ab).permute(1, 2, 0).numpy())
        if hints is not None:  # each hint as a dot of the true color there, ringed in white
            draw = ImageDraw.Draw(panel)
            patches = draw_patches(1, *size, sweep_sampling(patch), count=n, generator=torch.Generator().manual_seed(n))
            for top, left, h, w in zip(*(t[0].tolist() for t in patches[:4])):
                cy, cx = (top + h / 2) * height / size[0], (left + w / 2) * width / size[1]
                color = tuple(rgb[:, min(int(cy), height - 1), min(int(cx), width - 1)].tolist())
                draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=color, outline=(255, 255, 255))
        panels.append(panel)
    panels.append(Image.fromarray(rgb.permute(1, 2, 0).numpy()))
    grid = Image.new("RGB", (width * len(panels), height))
    for i, panel in enumerate(panels):
        grid.paste(panel, (i * width, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hint_ckpt", type=Path, required=True, help="a checkpoint trained with hints: true")
    parser.add_argument("--plain_ckpt", type=Path, default=None, help="the hint-free model (default: the shipped one)")
    parser.add_argument("--every", type=int, default=3, help="every n-th held-out photo (default 3: 316 photos)")
    parser.add_argument("--patches", type=int, nargs="+", default=[6, 2])
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--picture", type=Path, default=None, help="save the example picture here (PNG)")
    args = parser.parse_args()

    from lit_colorize.colorizer import module_from_checkpoint
    from lit_colorize.pretrained import pretrained_checkpoint

    torch.set_grad_enabled(False)
    print(machine_line())
    hinted = module_from_checkpoint(args.hint_ckpt).net.eval()
    plain = module_from_checkpoint(args.plain_ckpt or pretrained_checkpoint()).net.eval()
    if not hinted.hints:
        raise SystemExit(f"{args.hint_ckpt} was trained without hints (hints: false)")
    paths = photos(args.every)
    print(f"{len(paths)} held-out photos (every {args.every}th of {HELD_OUT.name}), mode_mean T={args.temperature}")
    started = time.perf_counter()
    base = sweep(plain, paths, (0,), 6, args.temperature, args.seed)[0]
    curves = {patch: sweep(hinted, paths, COUNTS, patch, args.temperature, args.seed) for patch in args.patches}
    bounds = ceilings(hinted, paths, args.temperature)
    print(f"measured in {time.perf_counter() - started:.0f} s\n")
    header = f"{'model':<22} {'patch':>5} " + " ".join(f"{'N=' + str(n):>7}" for n in COUNTS)
    for key, label in (("psnr_mean", "PSNR dB"), ("auc", "AuC"), ("auc_rebalanced", "AuC rebalanced")):
        print(label)
        print(header)
        for patch, curve in curves.items():
            print(f"{'hints':<22} {patch:>5} " + " ".join(f"{curve[n][key]:7.3f}" for n in COUNTS))
        print(f"{'no hints (same budget)':<22} {'-':>5} {base[key]:7.3f}")
        notes = {"output": "the truth's ab at the network's output resolution", "bins": f"... and in its bin, decoded at T={args.temperature}"}
        for name, bound in bounds.items():
            print(f"{'ceiling, ' + name:<22} {'-':>5} {bound[key]:7.3f}   {notes[name]}")
        if key == "psnr_mean":
            print(f"{'Zhang et al. 2017':<22} {6:>5} " + " ".join(f"{PUBLISHED[n]:7.2f}" if n in PUBLISHED else f"{'-':>7}" for n in COUNTS))
        print()
    recall_hinted, recall_plain = suggestion_recall(hinted, paths), suggestion_recall(plain, paths)
    print(f"true bin among the top {TOP_K} suggestions (no hint): hint model {recall_hinted:.3f}, hint-free model {recall_plain:.3f}")
    main_patch = args.patches[0]
    curve = curves[main_patch]
    gain10, gain100 = curve[10]["psnr_mean"] - curve[0]["psnr_mean"], curve[100]["psnr_mean"] - curve[0]["psnr_mean"]
    verdicts = [
        (f"PSNR gain at 10 hints ({main_patch}x{main_patch}) {gain10:+.2f} dB >= +3 (Zhang: +4.0)", gain10 >= 3.0),
        (f"PSNR gain at 100 hints ({main_patch}x{main_patch}) {gain100:+.2f} dB >= +5 (Zhang: +6.7)", gain100 >= 5.0),
        (f"N=0: AuC {curve[0]['auc']:.4f} within 0.005 of the hint-free {base['auc']:.4f}",
         abs(curve[0]["auc"] - base["auc"]) <= 0.005),
        (f"N=0: PSNR {curve[0]['psnr_mean']:.2f} within 0.2 dB of the hint-free {base['psnr_mean']:.2f}",
         abs(curve[0]["psnr_mean"] - base["psnr_mean"]) <= 0.2),
        (f"suggestions: true bin in the top {TOP_K} for {recall_hinted:.3f} of pixels >= 0.80", recall_hinted >= 0.8),
    ]  # fmt: skip
    for text, ok in verdicts:
        print(f"{'MET   ' if ok else 'MISSED'} {text}")
    if args.picture:
        example_picture(hinted, paths[0], (0, 1, 5, 20), main_patch, args.temperature, args.picture)
        print(f"example: {args.picture} (gray | automatic | 1, 5, 20 hints as dots | truth)")


if __name__ == "__main__":
    main()
