"""User-guided colorization: quality against the number of hints, and how local a hint is.

Quality (Zhang et al. 2017's sweep, at full resolution: issue 27's protocol). BSDS500 test
photos at their own 481x321; for each N, N hints drawn from the truth in the photo's own pixels
(a :data:`HINT_PX` square, its mean ab, placed as colorization-pytorch's ``test_sweep.py``
places its patches, "normal" around the centre); each photo colorized as a user gets it
(``colorize_photo``: L and the hints at the working size, ab upsampled to the photo and joined
with its own L); PSNR, AuC and rebalanced AuC against the truth. The working size (the
network input's shorter side) bounds what hints can do: each row names it.

Locality (issue 31: one hint recoloured the whole photo). For 1 and 3 hints of a saturated
color (a palette a user might click, at uniform places, :data:`HINT_PX` photo pixels wide), the
ab change against the same call without hints, by each pixel's distance to the nearest hint, in
hint sides and in photo widths; the target is on the share of pixels more than a quarter of the
photo's width from every hint that move more than 5 ab units.

Rows: each hint model at each working size; with ``--ablate``, the same model with its global
context computed without the hint channels (``context_channels=1``: what issue 31's fix does in
training, here on weights trained without it); the hint-free model at N = 0; two ceilings that
no number of hints can pass through the network's output (the truth's ab at the output
resolution, and in its bin decoded as the model's bins are); the share of pixels whose true
bin is among the model's top 6 suggestions with no hint (on every 3rd held-out Landscape photo
at the model's own working size, where that target was set).

    python -m benchmarks.hints --every 5 --picture docs/hints/locality_v1.png | tee docs/hints/benchmark.txt
    python -m benchmarks.hints --hint_ckpt a.ckpt b.ckpt --working_sizes 64 --every 4
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import REPO_ROOT, SHARED_DATA, machine_line, print_verdicts

HELD_OUT = REPO_ROOT / "docs" / "model" / "heldout_landscape.txt"
BSDS_TEST = SHARED_DATA / "photos" / "bsds500" / "test"
COUNTS = (0, 1, 2, 5, 10, 100)
PUBLISHED = {0: 24.43, 1: 25.37, 5: 27.39, 10: 28.42, 100: 31.13}  # resources/psnrs_siggraph.npy, ImageNet 256^2
#: A hint's side in photo pixels: 15 of 321 is 3 pixels at the 64 px working size (predict's
#: default side for a click) and close to the share of the image Zhang's 6x6 covers at 256 px.
HINT_PX = 15
LOCALITY_COUNTS = (1, 3)
#: Colors a user might click (the first is issue 31's): far from most photos' own ab somewhere.
PALETTE = ("#2a6fdb", "#d62828", "#2a9d3f", "#f4c430", "#8e44ad", "#e67e22")
PATCH_EDGES = (0, 1, 2, 4, 8, 16)  # in hint sides
WIDTH_EDGES = (0, 1 / 16, 1 / 8, 1 / 4, 1 / 2)  # in photo widths
FAR = 1 / 4  # of the photo's width: the locality target's radius
FAR_TARGET = 0.10  # at most this share of the far pixels move more than 5 ab units (one hint)
TOP_K = 6


def photos(every: int) -> list[Path]:
    """Every ``every``-th BSDS500 test photo, in name order."""
    found = sorted(BSDS_TEST.glob("*.jpg"))
    if not found:
        raise SystemExit(f"no photos in {BSDS_TEST}: BSDS500's test split, in ../shared/data beside the checkout")
    return found[::every]


def held_out(every: int) -> list[Path]:
    """Every ``every``-th photo of the held-out Landscape list (paths relative to the repository)."""
    lines = [line.strip() for line in HELD_OUT.read_text(encoding="utf-8").splitlines()]
    listed = [REPO_ROOT / line for line in lines if line and not line.startswith("#")]
    missing = [path for path in listed if not path.is_file()]
    if missing:
        raise SystemExit(f"{len(missing)} held-out photos missing, e.g. {missing[0]} (../shared/data beside the checkout)")
    return listed[::every]


def suggestion_recall(net, paths: list[Path], k: int = TOP_K) -> float:
    """The share of pixels (at the network's output resolution and own working size) whose true
    bin is among the k most probable bins with no hint: how often ``suggest``'s palette holds
    the right color at the first click."""
    from lit_colorize.bins import ab_to_bin
    from lit_colorize.evaluation import Truth
    from lit_colorize.fullres import network_input, working_size
    from lit_colorize.imageio import load_rgb

    hits = total = 0
    for path in paths:
        truth = Truth.of(load_rgb(path))
        size = working_size(*truth.lightness.shape, net.predict_short_side, net.size_multiple)
        logits = net(network_input(truth.lightness, size))
        ab = F.interpolate(truth.ab, size=tuple(logits.shape[-2:]), mode="bilinear", align_corners=False, antialias=True)
        true_bins = net.class_of_bin[ab_to_bin(ab, net.grid_size)]
        hits += int((logits.topk(k, dim=1).indices == true_bins[:, None]).any(dim=1).sum())
        total += true_bins.numel()
    return hits / total


def truth_hints(rgb: torch.Tensor, lab: torch.Tensor, count: int, generator: torch.Generator) -> list:
    """``count`` hints from the truth, in photo pixels: the mean ab (and RGB) over a
    :data:`HINT_PX` square placed as Zhang's sweep places its patches."""
    from lit_colorize.hints import draw_patches, sweep_sampling
    from lit_colorize.user_hints import UserHint

    height, width = lab.shape[-2:]
    patches = draw_patches(1, height, width, sweep_sampling(HINT_PX), count=count, generator=generator)
    hints = []
    for top, left, rows, cols in zip(*(field[0].tolist() for field in patches[:4])):
        window = (slice(top, top + rows), slice(left, left + cols))
        a, b = lab[1][window].mean().item(), lab[2][window].mean().item()
        color = tuple(int(round(c)) for c in rgb[(slice(None), *window)].float().mean(dim=(1, 2)).tolist())
        hints.append(UserHint(left + (cols - 1) / 2, top + (rows - 1) / 2, color, (a, b), float(HINT_PX)))
    return hints


def clicked_hints(height: int, width: int, count: int, generator: torch.Generator) -> list:
    """``count`` palette colors at uniform places, as a user's clicks (checked like theirs)."""
    from lit_colorize.user_hints import parse_hints

    ys = torch.randint(height, (count,), generator=generator).tolist()
    xs = torch.randint(width, (count,), generator=generator).tolist()
    colors = torch.randint(len(PALETTE), (count,), generator=generator).tolist()
    raw = [{"x": x, "y": y, "color": PALETTE[c], "size": HINT_PX} for x, y, c in zip(xs, ys, colors)]
    return parse_hints(raw, "benchmark", height, width)


def ab_change(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(H, W) how far each pixel's ab moved between two uint8 RGB renderings, in ab units."""
    from lit_colorize.color import rgb_to_lab

    return (rgb_to_lab(after)[1:] - rgb_to_lab(before)[1:]).norm(dim=0)


class Locality:
    """One model's reach for one hint count, pooled over photos: per distance bin, the pixels'
    summed change, moved count and count; and each photo's far share."""

    def __init__(self) -> None:
        self.bins = {"patch": torch.zeros(len(PATCH_EDGES), 3), "width": torch.zeros(len(WIDTH_EDGES), 3)}
        self.far: list[float] = []

    def update(self, change: torch.Tensor, centres: list[tuple[float, float]]) -> None:
        from lit_colorize.hints import change_by_distance, far_moved_share, hint_distance

        height, width = change.shape
        distance = hint_distance(height, width, centres)
        for name, unit, edges in (("patch", HINT_PX, PATCH_EDGES), ("width", width, WIDTH_EDGES)):
            for row, (mean, moved, count) in zip(self.bins[name], change_by_distance(change, distance / unit, edges)):
                if count:
                    row += torch.tensor([mean * count, moved * count, count], dtype=row.dtype)
        self.far.append(far_moved_share(change, distance, FAR * width))

    def row(self, name: str) -> str:
        sums = self.bins[name]
        cells = [f"{s[0] / s[2]:5.1f} {s[1] / s[2]:4.0%}" if s[2] else f"{'-':>10}" for s in sums]
        return " ".join(f"{c:>10}" for c in cells)

    def far_share(self) -> float:
        return sum(self.far) / len(self.far)


def measure(net, plain, paths: list[Path], working: int, temperature: float, seed: int) -> dict:
    """At one working size: the sweep rows of ``net`` (and ``plain`` at N = 0), its locality
    and the two ceilings."""
    from lit_colorize.bins import ab_to_bin
    from lit_colorize.evaluation import RowScores, Truth
    from lit_colorize.fullres import network_input, render, working_size
    from lit_colorize.imageio import load_rgb
    from lit_colorize.metrics import colorfulness

    prior = net.color_table.counts if net.is_classifier else None
    rows = {n: RowScores(net.grid_size, prior, torch.device("cpu")) for n in COUNTS}
    plain_row = RowScores(plain.grid_size, prior, torch.device("cpu"))
    bounds = {name: RowScores(net.grid_size, prior, torch.device("cpu")) for name in ("output", "bins")}
    reach = {n: Locality() for n in LOCALITY_COUNTS}
    for index, path in enumerate(paths):
        rgb = load_rgb(path)
        truth = Truth.of(rgb)
        lab = torch.cat([truth.lightness[None], truth.ab[0]])
        truth_cf = float(colorfulness(truth.rgb)[0])
        base = None
        for n in COUNTS:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + index * 1009 + n)
            out = net.colorize_photo(rgb, [temperature], working, truth_hints(rgb, lab, n, generator) if n else ())[0]
            base = out if n == 0 else base
            rows[n].update(out, truth, truth_cf)
        plain_row.update(plain.colorize_photo(rgb, [temperature], working)[0], truth, truth_cf)
        for n in LOCALITY_COUNTS:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + index * 1009 + 500 + n)
            hints = clicked_hints(*rgb.shape[-2:], n, generator)
            after = net.colorize_photo(rgb, [temperature], working, hints)[0]
            reach[n].update(ab_change(base, after), [(hint.y, hint.x) for hint in hints])
        l_norm = network_input(truth.lightness, working_size(*truth.lightness.shape, working, net.size_multiple))
        logits = net(l_norm)
        ab_out = F.interpolate(truth.ab, size=tuple(logits.shape[-2:]), mode="bilinear", align_corners=False, antialias=True)
        bounds["output"].update(render(truth.lightness, ab_out[0]), truth, truth_cf)
        if net.is_classifier:
            true_bins = net.class_of_bin[ab_to_bin(ab_out, net.grid_size)]
            decoded = net.color_table.decode_bins(true_bins, temperature)[0]
            bounds["bins"].update(render(truth.lightness, decoded), truth, truth_cf)
    return {
        "curve": {n: scores.summary() for n, scores in rows.items()},
        "plain": plain_row.summary(),
        "bounds": {name: row.summary() for name, row in bounds.items() if name == "output" or net.is_classifier},
        "reach": reach,
    }


def example_picture(models: list, path: Path, working: int, temperature: float, seed: int, out: Path) -> None:
    """A row per model: automatic | 1 clicked hint | where it moved ab by > 5 (white) | 3 hints |
    where they did; hints drawn as dots of their color ringed in white, the far radius as a circle."""
    from PIL import Image, ImageDraw

    from lit_colorize.hints import MOVED_AB
    from lit_colorize.imageio import load_rgb

    rgb = load_rgb(path)
    height, width = rgb.shape[-2:]
    rows = []
    for _, net in models:
        base = net.colorize_photo(rgb, [temperature], working)[0]
        panels = [base]
        for n in (1, 3):
            hints = clicked_hints(height, width, n, torch.Generator().manual_seed(seed + n))
            after = net.colorize_photo(rgb, [temperature], working, hints)[0]
            moved = (ab_change(base, after) > MOVED_AB).to(torch.uint8).mul(255).expand(3, -1, -1)
            for panel in (after, moved):
                image = Image.fromarray(panel.permute(1, 2, 0).contiguous().numpy())
                draw = ImageDraw.Draw(image)
                for hint in hints:
                    r = FAR * width
                    if panel is moved:
                        draw.ellipse([hint.x - r, hint.y - r, hint.x + r, hint.y + r], outline=(255, 64, 64))
                    draw.ellipse([hint.x - 5, hint.y - 5, hint.x + 5, hint.y + 5], fill=hint.rgb, outline=(255, 255, 255))
                panels.append(torch.from_numpy(np.array(image)).permute(2, 0, 1))
        rows.append(torch.cat(panels, dim=2))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(torch.cat(rows, dim=1).permute(1, 2, 0).contiguous().numpy()).save(out)


def hint_models(paths: list[Path], ablate: bool) -> list[tuple[str, object]]:
    """(label, network) for each hint checkpoint, and its ablation where asked and possible."""
    from lit_colorize.colorizer import module_from_checkpoint

    models = []
    for path in paths:
        net = module_from_checkpoint(path).net.eval()
        if not net.hints:
            raise SystemExit(f"{path} was trained without hints (hints: false); give a checkpoint trained with hints: true")
        label = path.stem if len(paths) > 1 else "hints"
        models.append((label, net))
        if ablate and net.global_context is not None and net.context_channels is None:
            ablated = copy.deepcopy(net)
            ablated.context_channels = 1
            models.append((f"{label}, context w/o hints", ablated))
    return models


def main() -> int:
    from lit_colorize.colorizer import module_from_checkpoint
    from lit_colorize.pretrained import PRETRAINED_HINTS_NAME, pretrained_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hint_ckpt", type=Path, nargs="+", default=None, help="checkpoints trained with hints (default: the shipped one)")
    parser.add_argument("--plain_ckpt", type=Path, default=None, help="the hint-free model (default: the shipped one)")
    parser.add_argument("--working_sizes", type=int, nargs="+", default=[64, 128, 192])
    parser.add_argument("--every", type=int, default=2, help="every n-th BSDS500 test photo (default 2: 100 photos)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablate", action="store_true", help="add each model with its global context computed without hints")
    parser.add_argument("--picture", type=Path, default=None, help="save the locality picture here (PNG)")
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    print(machine_line())
    hint_ckpts = args.hint_ckpt or [pretrained_checkpoint(PRETRAINED_HINTS_NAME)]
    models = hint_models(hint_ckpts, args.ablate)
    plain = module_from_checkpoint(args.plain_ckpt or pretrained_checkpoint()).net.eval()
    paths = photos(args.every)
    print(f"{len(paths)} BSDS500 test photos (every {args.every}th), full resolution, mode_mean T={args.temperature}; "
          f"hints {HINT_PX}x{HINT_PX} photo pixels; models: {', '.join(str(p) for p in hint_ckpts)}")  # fmt: skip
    started = time.perf_counter()
    results = {
        (label, working): measure(net, plain, paths, working, args.temperature, args.seed)
        for working in args.working_sizes
        for label, net in models
    }
    recall = {label: suggestion_recall(net, held_out(3)) for label, net in models}
    print(f"measured in {time.perf_counter() - started:.0f} s\n")
    width = max(22, *(len(label) + 1 for label, _ in models))
    header = f"{'model':<{width}} {'work':>4} " + " ".join(f"{'N=' + str(n):>7}" for n in COUNTS) + "  gain@10"
    for key, label in (("psnr_mean", "PSNR dB"), ("auc", "AuC"), ("auc_rebalanced", "AuC rebalanced")):
        print(label)
        print(header)
        for working in args.working_sizes:
            for name, _ in models:
                curve = results[name, working]["curve"]
                gain = curve[10][key] - curve[0][key]
                print(f"{name:<{width}} {working:>4} " + " ".join(f"{curve[n][key]:7.3f}" for n in COUNTS) + f"  {gain:+7.3f}")
            first = results[models[0][0], working]
            print(f"{'no hints (same budget)':<{width}} {working:>4} {first['plain'][key]:7.3f}")
            for bound, bound_result in first["bounds"].items():
                print(f"{'ceiling, ' + bound:<{width}} {working:>4} {bound_result[key]:7.3f}")
        if key == "psnr_mean":
            print(f"{'Zhang et al. 2017 (256)':<{width}} {'':>4} " + " ".join(f"{PUBLISHED[n]:7.2f}" if n in PUBLISHED else f"{'-':>7}" for n in COUNTS))
        print()
    print("ceiling, output: the truth's ab at the network's output resolution; bins: ... in its bin, decoded at the same T\n")

    print(f"Locality: a clicked hint's ab change (mean ab units, share of pixels moved > 5) by distance to the nearest hint")
    for unit, edges in (("patch", PATCH_EDGES), ("width", WIDTH_EDGES)):
        names = [f"{low:g}-{high:g}" for low, high in zip(edges, edges[1:])] + [f">={edges[-1]:g}"]
        print(f"distance in {'hint sides (' + str(HINT_PX) + ' px)' if unit == 'patch' else 'photo widths'}")
        print(f"{'model':<{width}} {'work':>4} {'N':>2} " + " ".join(f"{n:>10}" for n in names))
        for working in args.working_sizes:
            for name, _ in models:
                for n, reach in results[name, working]["reach"].items():
                    print(f"{name:<{width}} {working:>4} {n:>2} " + reach.row(unit))
        print()
    print(f"share of pixels beyond {FAR:g} of the photo's width from every hint that move > 5 ab units (mean over photos)")
    for working in args.working_sizes:
        for name, _ in models:
            reach = results[name, working]["reach"]
            print(f"{name:<{width}} {working:>4} " + "  ".join(f"N={n}: {r.far_share():6.1%}" for n, r in reach.items()))
    print()
    print(f"true bin among the top {TOP_K} suggestions (no hint; held-out Landscape, every 3rd, own working size): "
          + ", ".join(f"{name} {recall[name]:.3f}" for name, _ in models))  # fmt: skip

    verdicts = []
    for name, _ in models:
        for working in args.working_sizes:
            result = results[name, working]
            curve, base = result["curve"], result["plain"]
            gain10 = curve[10]["psnr_mean"] - curve[0]["psnr_mean"]
            gain100 = curve[100]["psnr_mean"] - curve[0]["psnr_mean"]
            far = result["reach"][1].far_share()
            tag = f"{name}, working size {working}:"
            verdicts += [
                (f"{tag} PSNR gain at 10 hints {gain10:+.2f} dB >= +4 (issue 27; Zhang: +4.0)", gain10 >= 4.0),
                (f"{tag} PSNR gain at 100 hints {gain100:+.2f} dB >= +5 (Zhang: +6.7)", gain100 >= 5.0),
                (f"{tag} one hint moves {far:.1%} of the pixels beyond {FAR:g} of the width by > 5 ab, < {FAR_TARGET:.0%} (issue 31)",
                 far < FAR_TARGET),
                (f"{tag} N=0 AuC {curve[0]['auc']:.4f} within 0.005 of the hint-free {base['auc']:.4f}",
                 abs(curve[0]["auc"] - base["auc"]) <= 0.005),
                (f"{tag} N=0 PSNR {curve[0]['psnr_mean']:.2f} within 0.2 dB of the hint-free {base['psnr_mean']:.2f}",
                 abs(curve[0]["psnr_mean"] - base["psnr_mean"]) <= 0.2),
            ]  # fmt: skip
        verdicts.append((f"{name}: true bin in the top {TOP_K} suggestions for {recall[name]:.3f} of pixels >= 0.80",
                         recall[name] >= 0.8))  # fmt: skip
    if args.picture:
        example_picture(models, paths[0], args.working_sizes[0], args.temperature, args.seed, args.picture)
        print(f"\npicture: {args.picture} ({paths[0].name}, working size {args.working_sizes[0]}; a row per model: "
              f"automatic | 1 hint | pixels moved > 5 ab | 3 hints | moved; red circle: {FAR:g} of the width)")  # fmt: skip
    return print_verdicts(verdicts)


if __name__ == "__main__":
    raise SystemExit(main())
