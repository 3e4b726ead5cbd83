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

Global hints (issue 30; ``--global CKPT``, a model trained with ``global_hints: true``), at
full resolution, side by side: (a) no hint; (b) the truth's own distribution as the global hint
(PSNR, AuC, rebalanced AuC and their gains over (a)); (c) another photo of the same category as
the reference: the histogram intersection of the output's ab distribution (at the model's bins,
smoothed as the hint is) with the reference's, with and without it, and the output's L* against
the photo's (kept: only ab is predicted). Photos: ``--corpus``'s held-out split
(docs/data/heldout.txt; the category is a path's second part), else the BSDS500 test photos
(pairs within a folder); each photo is paired with the next of its category.

Video (``--video [FOLDER]``, default ../shared/data/video): on each clip's first ``--frames``
frames, 10 truth hints on frame 0 only (:func:`truth_hints`, colors from the true frame)
carried along the clip by the keyframe carrier (lit_colorize/video/keyframes.py), against no
hints, both stabilised: PSNR against the original frames and the ab warping error
(benchmarks/video.py's metric flow and lit_colorize/video/consistency.py).

The hint sweep and locality rows run unless only ``--global`` or ``--video`` is asked for
(``--local`` adds them back).

    python -m benchmarks.hints --every 5 --picture docs/hints/locality_v1.png | tee docs/hints/benchmark.txt
    python -m benchmarks.hints --hint_ckpt a.ckpt b.ckpt --working_sizes 64 --every 4
    python -m benchmarks.hints --global general_hints.ckpt --corpus ~/data/corpus --every 2 --video --hint_ckpt general_hints.ckpt
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
CORPUS_HELD_OUT = REPO_ROOT / "docs" / "data" / "heldout.txt"
VIDEO_DIR = SHARED_DATA / "video"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi")
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
GLOBAL_ROWS = ("no hint", "truth's own", "reference")
TRUTH_PSNR_TARGET, TRUTH_AUC_TARGET, INTERSECTION_TARGET = 1.5, 0.05, 0.1  # issue 30
L_TOLERANCE = 0.5  # L* units: the hint may change L* only as far as gamut clipping at the render does
VIDEO_HINTS, VIDEO_PSNR_TARGET = 10, 1.5


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


# --- global hints (issue 30) ----------------------------------------------------------------
def global_photos(corpus: Path | None, listing: Path, every: int) -> list[tuple[str, Path]]:
    """(category, path) of every ``every``-th held-out corpus photo (the category: a listed path's
    second part), or of the BSDS500 test photos (their folder) without a corpus."""
    if corpus is None:
        return [(path.parent.name, path) for path in photos(every)]
    lines = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines()]
    listed = [line for line in lines if line and not line.startswith("#")]
    missing = [line for line in listed if not (corpus / line).is_file()]
    if missing or not listed:
        raise SystemExit(f"{len(missing)} photos of {listing} missing under {corpus}, e.g. {missing[:1]}; give --corpus the corpus folder")
    return [(Path(line).parts[1] if len(Path(line).parts) > 2 else Path(line).parent.name, corpus / line) for line in listed][::every]


def reference_pairs(entries: list[tuple[str, Path]]) -> list[tuple[str, Path, Path]]:
    """(category, photo, reference): each photo with the next of its category (cyclically, in
    name order); categories of one photo are left out."""
    groups: dict[str, list[Path]] = {}
    for category, path in entries:
        groups.setdefault(category, []).append(path)
    pairs = []
    for category, paths in sorted(groups.items()):
        paths = sorted(paths)
        if len(paths) > 1:
            pairs += [(category, path, paths[(i + 1) % len(paths)]) for i, path in enumerate(paths)]
    if not pairs:
        raise SystemExit("no category holds two photos: give more photos (a smaller --every)")
    return pairs


def intersection(p: torch.Tensor, q: torch.Tensor) -> float:
    """Histogram intersection of two distributions over the same bins: 1 when equal, 0 when disjoint."""
    return float(torch.minimum(p, q).sum())


def measure_global(net, pairs: list[tuple[str, Path, Path]], working: int, temperature: float) -> dict:
    """Rows (a) no hint, (b) the truth's own distribution, (c) the pair's reference: PSNR/AuC
    scores, and per photo the output's histogram intersection with the reference's distribution
    and its mean |L* out - L* in|."""
    from lit_colorize.color import rgb_to_lab
    from lit_colorize.evaluation import RowScores, Truth
    from lit_colorize.global_hints import global_hint_vector, reference_distribution
    from lit_colorize.imageio import load_rgb
    from lit_colorize.metrics import colorfulness

    grid = net.grid_size
    prior = net.color_table.counts if net.is_classifier else None
    scores = {row: RowScores(grid, prior, torch.device("cpu")) for row in GLOBAL_ROWS}
    overlap: dict[str, list[float]] = {row: [] for row in GLOBAL_ROWS}
    l_error: dict[str, list[float]] = {row: [] for row in GLOBAL_ROWS}
    for _, path, other in pairs:
        rgb = load_rgb(path)
        truth = Truth.of(rgb)
        truth_cf = float(colorfulness(truth.rgb)[0])
        reference = reference_distribution(load_rgb(other), grid)
        vectors = {"no hint": None, "truth's own": global_hint_vector(reference_distribution(rgb, grid), grid),
                   "reference": global_hint_vector(reference, grid)}  # fmt: skip
        for row, vector in vectors.items():
            out = net.colorize_photo(rgb, [temperature], working, global_hint=vector)[0]
            scores[row].update(out, truth, truth_cf)
            overlap[row].append(intersection(reference_distribution(out, grid).distribution, reference.distribution))
            l_error[row].append(float((rgb_to_lab(out)[0] - truth.lightness).abs().mean()))
    return {row: {**scores[row].summary(), "intersection": float(np.mean(overlap[row])), "l_error": float(np.mean(l_error[row]))}
            for row in GLOBAL_ROWS}  # fmt: skip


def global_section(net, label: str, pairs: list, working: int, temperature: float, twin) -> list[tuple[str, bool]]:
    """Prints the global-hint rows side by side; returns their verdicts."""
    result = measure_global(net, pairs, working, temperature)
    base = result["no hint"]
    print(f"Global hints ({label}, working size {working}): {len(pairs)} photos, each with the next of its category as the reference")
    print(f"{'row':<26} {'PSNR dB':>8} {'AuC':>7} {'AuC rb':>7} {'dPSNR':>7} {'dAuC':>7} {'dAuC rb':>7} {'HI ref':>7} {'|dL*|':>6}")
    for row in GLOBAL_ROWS:
        r = result[row]
        print(f"{row:<26} {r['psnr_mean']:8.3f} {r['auc']:7.4f} {r['auc_rebalanced']:7.4f} {r['psnr_mean'] - base['psnr_mean']:+7.3f} "
              f"{r['auc'] - base['auc']:+7.4f} {r['auc_rebalanced'] - base['auc_rebalanced']:+7.4f} {r['intersection']:7.4f} {r['l_error']:6.3f}")  # fmt: skip
    if twin is not None:
        t = measure_global(twin, pairs, working, temperature)["no hint"] if twin.global_hints else twin_scores(twin, pairs, working, temperature)
        print(f"{'same recipe, no global hints':<26} {t['psnr_mean']:8.3f} {t['auc']:7.4f} {t['auc_rebalanced']:7.4f}")
    print("HI ref: histogram intersection of the output's ab distribution with the reference's (smoothed, the model's bins); "
          "|dL*|: mean |L* out - L* in|\n")  # fmt: skip
    own, ref = result["truth's own"], result["reference"]
    gain_psnr, gain_auc = own["psnr_mean"] - base["psnr_mean"], own["auc_rebalanced"] - base["auc_rebalanced"]
    gain_hi = ref["intersection"] - base["intersection"]
    verdicts = [
        (f"{label}: truth's own distribution gains {gain_psnr:+.2f} dB PSNR >= +{TRUTH_PSNR_TARGET} (issue 30)", gain_psnr >= TRUTH_PSNR_TARGET),
        (f"{label}: truth's own distribution gains {gain_auc:+.4f} rebalanced AuC >= +{TRUTH_AUC_TARGET}", gain_auc >= TRUTH_AUC_TARGET),
        (f"{label}: a same-category reference raises the histogram intersection with it {gain_hi:+.3f} >= +{INTERSECTION_TARGET} "
         f"({base['intersection']:.3f} -> {ref['intersection']:.3f})", gain_hi >= INTERSECTION_TARGET),
        (f"{label}: L* kept with a reference: mean |L* out - L* in| {ref['l_error']:.3f} within {L_TOLERANCE} of no hint's "
         f"{base['l_error']:.3f}", abs(ref["l_error"] - base["l_error"]) <= L_TOLERANCE),
    ]  # fmt: skip
    if twin is not None:
        verdicts += [
            (f"{label}: no hint PSNR {base['psnr_mean']:.2f} within 0.2 dB of the same recipe without global hints {t['psnr_mean']:.2f}",
             abs(base["psnr_mean"] - t["psnr_mean"]) <= 0.2),
            (f"{label}: no hint AuC {base['auc']:.4f} within 0.005 of the same recipe without global hints {t['auc']:.4f}",
             abs(base["auc"] - t["auc"]) <= 0.005),
        ]  # fmt: skip
    return verdicts


def twin_scores(net, pairs: list, working: int, temperature: float) -> dict:
    """The no-hint scores of a model without global hints on the same photos."""
    from lit_colorize.evaluation import RowScores, Truth
    from lit_colorize.imageio import load_rgb
    from lit_colorize.metrics import colorfulness

    scores = RowScores(net.grid_size, net.color_table.counts if net.is_classifier else None, torch.device("cpu"))
    for _, path, _ in pairs:
        rgb = load_rgb(path)
        truth = Truth.of(rgb)
        scores.update(net.colorize_photo(rgb, [temperature], working)[0], truth, float(colorfulness(truth.rgb)[0]))
    return scores.summary()


# --- keyframe hints carried along a clip (issue 30) -------------------------------------------
def first_frames(source: Path, count: int) -> list[np.ndarray]:
    """The clip's first ``count`` frames, uint8 RGB (H, W, 3)."""
    from lit_colorize.video.io import VideoReader

    frames = []
    with VideoReader(source) as reader:
        for decoded in reader:
            if len(frames) == count:
                break
            frames.append(decoded.rgb)
    return frames


def carried_truth_hints(colorizer, frames: list[np.ndarray], seed: int) -> dict[int, list]:
    """:data:`VIDEO_HINTS` truth hints on frame 0 (:func:`truth_hints`) carried over ``frames``
    by the keyframe carrier, at the size and with the settings ``colorizer`` stabilises with."""
    from lit_colorize.color import rgb_to_lab
    from lit_colorize.fullres import full_resolution_l
    from lit_colorize.video.colorize import resized
    from lit_colorize.video.keyframes import HintCarrier, KeyframeHint

    first = torch.from_numpy(frames[0]).permute(2, 0, 1)
    hints = truth_hints(first, rgb_to_lab(first), VIDEO_HINTS, torch.Generator().manual_seed(seed))
    height, width = frames[0].shape[:2]
    carrier = HintCarrier([KeyframeHint(0, hint) for hint in hints], (height, width), colorizer.stabilizer_settings)
    small = colorizer.sizes(height, width)[1]
    for frame in frames:
        lightness = full_resolution_l(torch.from_numpy(frame).permute(2, 0, 1))
        carrier(resized(lightness[None], small)[0].numpy())
    return carrier.by_frame


def video_rows(net, source: Path, count: int, temperature: float, seed: int) -> dict[str, dict[str, float]]:
    """No hints and carried truth hints, both stabilised, on the clip's first ``count`` frames:
    PSNR/AuC against the original frames and the temporal-consistency metrics."""
    from benchmarks.video import METRIC_FLOW_PRESET
    from lit_colorize.evaluation import RowScores, Truth
    from lit_colorize.metrics import colorfulness
    from lit_colorize.video.colorize import FrameColorizer
    from lit_colorize.video.consistency import VideoConsistency
    from lit_colorize.video.flow import FlowEstimator, pair_geometry, to_gray_u8

    frames = first_frames(source, count)
    plain = FrameColorizer(net, [temperature], temporal_consistency=True)
    hinted = FrameColorizer(net, [temperature], temporal_consistency=True)
    hinted.frame_hints = carried_truth_hints(hinted, frames, seed)
    rows = ("no hints", "frame-0 hints")
    prior = net.color_table.counts if net.is_classifier else None
    scores = {row: RowScores(net.grid_size, prior, torch.device("cpu")) for row in rows}
    consistency = {row: VideoConsistency() for row in rows}
    estimator, previous = FlowEstimator(METRIC_FLOW_PRESET), None
    for truth, (without,), (with_hints,) in zip(frames, plain(iter(frames)), hinted(iter(frames))):
        gray = to_gray_u8(truth)
        geometry = None if previous is None else pair_geometry(previous, gray, estimator)
        previous = gray
        reference = Truth.of(torch.from_numpy(truth).permute(2, 0, 1))
        cf = float(colorfulness(reference.rgb)[0])
        for row, image in zip(rows, (without, with_hints)):
            consistency[row].update(image, geometry)
            scores[row].update(torch.from_numpy(image).permute(2, 0, 1), reference, cf)
    carried = sum(len(hinted.frame_hints.get(i, [])) for i in range(len(frames)))
    return {row: {**scores[row].summary(), **consistency[row].summary(), "frames": len(frames), "hints": carried if row != rows[0] else 0,
                  "cuts": len(hinted.cuts)} for row in rows}  # fmt: skip


def video_section(net, label: str, folder: Path, clips: list[str] | None, count: int, temperature: float, seed: int) -> list[tuple[str, bool]]:
    """Prints the clips' rows (no hints vs frame-0 hints carried) and their means; returns the verdicts."""
    if not folder.is_dir():
        raise SystemExit(f"no clips: {folder} not found (the read-only ../shared/data/video beside the checkout)")
    names = clips or sorted(p.name for p in folder.iterdir() if p.suffix in VIDEO_SUFFIXES)
    if not net.hints:
        raise SystemExit(f"{label} was trained without hints (hints: false); --video needs a model trained with hints: true")
    print(f"Keyframe hints ({label}): {VIDEO_HINTS} truth hints on frame 0 only, carried along the first {count} frames; "
          f"both rows stabilised; mode_mean T={temperature}")  # fmt: skip
    print(f"{'clip':<26} {'row':<14} {'frames':>6} {'hints':>6} {'PSNR dB':>8} {'AuC':>7} {'AuC rb':>7} {'ab warp':>8} {'warp e-3':>8}")
    results = {}
    for name in names:
        results[name] = video_rows(net, folder / name, count, temperature, seed)
        for row, r in results[name].items():
            print(f"{name:<26} {row:<14} {r['frames']:6d} {r['hints']:6d} {r['psnr_mean']:8.3f} {r['auc']:7.4f} {r['auc_rebalanced']:7.4f} "
                  f"{r['ab_warp_error']:8.3f} {r['warp_error_e3']:8.3f}", flush=True)  # fmt: skip
    mean = {row: {key: float(np.mean([results[n][row][key] for n in names])) for key in ("psnr_mean", "ab_warp_error")}
            for row in ("no hints", "frame-0 hints")}  # fmt: skip
    for row, r in mean.items():
        print(f"{'mean over clips':<26} {row:<14} {'':>6} {'':>6} {r['psnr_mean']:8.3f} {'':>7} {'':>7} {r['ab_warp_error']:8.3f}")
    print("hints: the carried hints summed over the frames (10 on frame 0, fewer where they leave the frame, none past a cut)\n")
    gain = mean["frame-0 hints"]["psnr_mean"] - mean["no hints"]["psnr_mean"]
    warp, warp_base = mean["frame-0 hints"]["ab_warp_error"], mean["no hints"]["ab_warp_error"]
    return [
        (f"{label}: frame-0 hints carried gain {gain:+.2f} dB PSNR over the first {count} frames >= +{VIDEO_PSNR_TARGET} (mean over clips)",
         gain >= VIDEO_PSNR_TARGET),
        (f"{label}: stabilised ab warping error with hints {warp:.3f} <= without {warp_base:.3f} (mean over clips)", warp <= warp_base),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hint_ckpt", type=Path, nargs="+", default=None, help="checkpoints trained with hints (default: the shipped one)")
    parser.add_argument("--plain_ckpt", type=Path, default=None, help="the hint-free model (default: the shipped one)")
    parser.add_argument("--working_sizes", type=int, nargs="+", default=[64, 128, 192])
    parser.add_argument("--every", type=int, default=2, help="every n-th BSDS500 test photo (default 2: 100 photos)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablate", action="store_true", help="add each model with its global context computed without hints")
    parser.add_argument("--picture", type=Path, default=None, help="save the locality picture here (PNG)")
    parser.add_argument("--global", dest="global_ckpt", type=Path, default=None, metavar="CKPT",
                        help="the global-hint rows for this checkpoint (trained with global_hints: true)")
    parser.add_argument("--twin_ckpt", type=Path, default=None,
                        help="the same recipe trained without global hints: the no-hint row's target")
    parser.add_argument("--corpus", type=Path, default=None, help="the corpus folder: --global on its held-out split")
    parser.add_argument("--heldout", type=Path, default=CORPUS_HELD_OUT, help="the held-out list under --corpus")
    parser.add_argument("--video", type=Path, nargs="?", const=VIDEO_DIR, default=None, metavar="FOLDER",
                        help="keyframe hints on the clips of FOLDER (default ../shared/data/video), with the first --hint_ckpt")
    parser.add_argument("--clips", nargs="*", default=None, help="file names in the --video folder (default: all)")
    parser.add_argument("--frames", type=int, default=60, help="the first frames of each clip (--video)")
    parser.add_argument("--local", action="store_true", help="the hint sweep and locality rows too, beside --global / --video")
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    print(machine_line())
    verdicts = []
    if args.local or (args.global_ckpt is None and args.video is None):
        verdicts += local_section(args)
    if args.global_ckpt is not None:
        verdicts += run_global(args)
    if args.video is not None:
        verdicts += run_video(args)
    return print_verdicts(verdicts)


def run_global(args: argparse.Namespace) -> list[tuple[str, bool]]:
    from lit_colorize.colorizer import module_from_checkpoint

    net = module_from_checkpoint(args.global_ckpt).net.eval()
    if not net.global_hints:
        raise SystemExit(f"{args.global_ckpt} was trained without global hints (global_hints: false); give one trained with global_hints: true")
    twin = module_from_checkpoint(args.twin_ckpt).net.eval() if args.twin_ckpt is not None else None
    pairs = reference_pairs(global_photos(args.corpus, args.heldout, args.every))
    where = f"{args.corpus} held-out ({args.heldout.name})" if args.corpus else "BSDS500 test"
    print(f"\n{len(pairs)} {where} photos (every {args.every}th), full resolution, mode_mean T={args.temperature}; "
          f"model: {args.global_ckpt}" + (f"; twin without global hints: {args.twin_ckpt}" if twin is not None else ""))
    started = time.perf_counter()
    verdicts = []
    for working in args.working_sizes:
        verdicts += global_section(net, args.global_ckpt.stem, pairs, working, args.temperature, twin)
    print(f"global rows measured in {time.perf_counter() - started:.0f} s")
    return verdicts


def run_video(args: argparse.Namespace) -> list[tuple[str, bool]]:
    from lit_colorize.colorizer import module_from_checkpoint
    from lit_colorize.pretrained import PRETRAINED_HINTS_NAME, pretrained_checkpoint

    path = (args.hint_ckpt or [pretrained_checkpoint(PRETRAINED_HINTS_NAME)])[0]
    net = module_from_checkpoint(path).net.eval()
    print(f"\nclips in {args.video}, model: {path}")
    started = time.perf_counter()
    verdicts = video_section(net, Path(path).stem, args.video, args.clips, args.frames, args.temperature, args.seed)
    print(f"video rows measured in {time.perf_counter() - started:.0f} s")
    return verdicts


def local_section(args: argparse.Namespace) -> list[tuple[str, bool]]:
    """The hint sweep, locality and suggestion rows (issues 27 and 31); returns their verdicts."""
    from lit_colorize.colorizer import module_from_checkpoint
    from lit_colorize.pretrained import PRETRAINED_HINTS_NAME, pretrained_checkpoint

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
    return verdicts


if __name__ == "__main__":
    raise SystemExit(main())
