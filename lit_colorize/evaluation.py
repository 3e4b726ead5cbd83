"""``lit-colorize evaluate``: a checkpoint's quality on any folder of color photos, as the table of a
colorization paper, measured on what a user of ``predict`` gets.

Why this path: a model is judged by the images it gives, so every photo goes the way of
:meth:`ColorizationNet.colorize_photo`, as in ``predict`` (the same functions, a strip of rows
at a time, the same pixels): at its own resolution, the network sees
its L at the working size, the predicted ab is upsampled and joined with the photo's own L, and
the uint8 RGB that comes out is compared with the photo. Gray (ab = 0 at the photo's own L,
rendered the same way) is the baseline each row is read against.

Per setting (decoding and temperature) and for gray:

* ``AuC``: area under the curve "fraction of pixels with ab error <= t", t = 0..150
  (:class:`~lit_colorize.metrics.ABErrorAUC`), the ab of the output RGB against the photo's,
  pooled over every pixel of every photo. ``AuC rebal``: each pixel weighted by the inverse of
  the model's training color prior at its true bin (the bin table's counts); a regression model
  has no table, so the evaluated pixels' own prior is used.
* ``PSNR mean`` and ``PSNR median`` over photos (per photo, on RGB in [0, 1]): the mean of
  per-photo dB is dominated by near-gray photos. A photo's PSNR is capped at
  :data:`PSNR_CAP_DB`, the PSNR of uint8 quantization noise: an output equal to its photo (the
  gray row of a gray photo) counts as that, not as infinity, so means stay finite.
* ``SSIM``: mean over photos (Gaussian window 11x11, sigma 1.5, windows inside the photo only, as
  Wang et al. and scikit-image; photos with a side under 11 pixels have none and are left out).
* ``CF``: mean colorfulness (Hasler and Suesstrunk 2003) of the outputs, beside the truth's
  (the ``truth`` row); ``ΔCF``: mean over photos of |CF(output) - CF(photo)|.

Memory is bounded as predict's is: every metric is summed strip by strip (:func:`photo_strips`,
about half a megapixel each, with SSIM's 5 rows of context), so only the photo's uint8 pixels
and its float L plane exist whole (about 7 bytes per pixel), whatever its size.

Outputs in ``--out``: ``metrics.md`` and ``metrics.csv`` (the table) and ``grid.png`` (the best,
median and worst photos by mean ab error under the best setting by rebalanced AuC; columns gray |
truth | output). Existing files are kept unless ``--overwrite``; every write is atomic.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from lit_colorize.atomic import atomic_write
from lit_colorize.color import rgb_to_lab, to_float_rgb
from lit_colorize.degrade import seeded_degradation
from lit_colorize.errors import ConfigError, DataError, OneLineArgumentParser, check_temperatures, check_working_size
from lit_colorize.fullres import DEFAULT_UPSAMPLING, UPSAMPLINGS, check_upsampling, full_resolution_l, network_input
from lit_colorize.fullres import render, render_rows, strip_rows, widen_ab
from lit_colorize.fullres import working_size as network_size
from lit_colorize.metrics import ABErrorAUC
from lit_colorize.module import ColorizationModule
from lit_colorize.network import ColorizationNet
from lit_colorize.photo_files import PhotoDataset, read_file_list
from lit_colorize.pretrained import pretrained_checkpoint

#: A photo with no pixel of chroma |ab| above this (ab units) counts as gray (Landscape's gray_threshold).
GRAY_CHROMA = 6.0
#: 10 log10(1 / MSE) at the MSE of uint8 rounding noise, (1/255)^2 / 12: about 58.9 dB. No uint8
#: output can be told apart from its photo more finely, so a photo's PSNR is capped here.
PSNR_CAP_DB = 10.0 * math.log10(12.0 * 255.0**2)
SSIM_WINDOW = 11  # torchmetrics' default Gaussian window
SSIM_BORDER = SSIM_WINDOW // 2  # rows and columns from a window's centre to its edge
GRID_TILE_HEIGHT = 160
GRID_TILE_MAX_WIDTH = 4 * GRID_TILE_HEIGHT  # a tile of a long strip is this wide, and thinner
OUTPUT_FILES = ("metrics.md", "metrics.csv", "grid.png")
DECODINGS = ("mode_mean", "annealed_mean")
GRAY, TRUTH = "gray (ab = 0)", "truth"
#: (key, header, +1 higher is better / -1 lower is better / 0 nearest the truth's, decimals)
COLUMNS = (
    ("auc", "AuC", 1, 4),
    ("auc_rebalanced", "AuC rebal", 1, 4),
    ("psnr_mean", "PSNR mean", 1, 2),
    ("psnr_median", "PSNR median", 1, 2),
    ("ssim", "SSIM", 1, 4),
    ("cf", "CF", 0, 2),
    ("delta_cf", "ΔCF", -1, 2),
)


@dataclass(frozen=True)
class Setting:
    """How the model's output becomes colors: a decoding at a temperature (``decoding`` None: a
    regression model, which has nothing to choose), brought to the photo's size by ``upsampling``
    (named only when it is not predict's default)."""

    decoding: str | None
    temperature: float = 0.0
    upsampling: str = DEFAULT_UPSAMPLING

    @property
    def name(self) -> str:
        name = "regression" if self.decoding is None else f"{self.decoding} T={self.temperature:g}"
        return name if self.upsampling == DEFAULT_UPSAMPLING else f"{name}, {self.upsampling}"


#: The default sweep: the mode, Zhang et al.'s annealed mean at T=0.38, and mode-to-mean at 0.8 and 1.
DEFAULT_SETTINGS = (
    Setting("mode_mean", 0.0),
    Setting("annealed_mean", 0.38),
    Setting("mode_mean", 0.8),
    Setting("mode_mean", 1.0),
)


def choose_settings(
    temperatures: Sequence[float] | None,
    decodings: Sequence[str] | None,
    net: ColorizationNet,
    upsamplings: Sequence[str] | None = None,
) -> list[Setting]:
    """The settings to evaluate, each under every one of ``upsamplings`` (default: predict's).
    Neither temperatures nor decodings given: the default sweep and the model's own recommended
    decoding (predict's default). Temperatures alone: each with the model's decoding. Decodings
    alone: each with the default sweep's temperatures. Both: paired in order, or one decoding for
    every temperature. A regression model: one setting."""
    upsamplings = [check_upsampling(u, "--upsampling") for u in dict.fromkeys(upsamplings or [DEFAULT_UPSAMPLING])]
    settings = _decoding_settings(temperatures, decodings, net)
    return [Setting(s.decoding, s.temperature, u) for u in upsamplings for s in settings]


def _decoding_settings(temperatures: Sequence[float] | None, decodings: Sequence[str] | None, net: ColorizationNet) -> list[Setting]:
    if not net.is_classifier:
        return [Setting(None)]
    for decoding in decodings or ():
        if decoding not in DECODINGS:
            raise ConfigError(f"--decodings: unknown decoding {decoding!r}; choose from {', '.join(DECODINGS)}")
    if temperatures is None and decodings is None:
        own = net.decodings_for(None)[0]
        return list(dict.fromkeys([*DEFAULT_SETTINGS, Setting(own.name, own.temperature)]))
    default_temperatures = list(dict.fromkeys(s.temperature for s in DEFAULT_SETTINGS))
    if temperatures is None:
        return [Setting(d, t) for d in dict.fromkeys(decodings) for t in default_temperatures]
    temperatures = check_temperatures(temperatures, "--temperatures")
    decodings = list(decodings or [net.decoding])
    if len(decodings) == 1:
        decodings = decodings * len(temperatures)
    if len(decodings) != len(temperatures):
        raise ConfigError(
            f"--decodings gives {len(decodings)} decodings for {len(temperatures)} temperatures: give one decoding, "
            "or one per temperature (paired in order)"
        )
    return list(dict.fromkeys(Setting(d, t) for d, t in zip(decodings, temperatures)))


@contextmanager
def decoding_as(net: ColorizationNet, decoding: str | None) -> Iterator[None]:
    """The network decodes with ``decoding`` inside the block (None: as it is), then as before."""
    saved = net.decoding
    net.decoding = decoding or saved
    try:
        yield
    finally:
        net.decoding = saved


def predicted_ab(
    net: ColorizationNet, lightness: Tensor, settings: Sequence[Setting], working_size: int | None,
    degrade: Callable[[Tensor], Tensor] | None = None,
) -> list[Tensor]:
    """The ab (2, h, w) at the working size under each setting, in order, for a photo of L*
    ``lightness`` (H, W), as ``predict`` computes it (:meth:`ColorizationNet.colorize_photo`):
    one forward pass per decoding, whatever the number of temperatures. ``degrade``: applied to
    the network's input only (``--degrade``)."""
    short_side = int(working_size or net.predict_short_side)
    l_norm = network_input(lightness, network_size(*lightness.shape, short_side, net.size_multiple))
    l_norm = l_norm if degrade is None else degrade(l_norm)
    ab: dict[tuple[str | None, float], Tensor] = {}  # upsamplings share their decoding's ab
    for decoding in dict.fromkeys(s.decoding for s in settings):
        group = list(dict.fromkeys(s.temperature for s in settings if s.decoding == decoding))
        with decoding_as(net, decoding):
            ab.update(zip(((decoding, t) for t in group), (a[0] for a in net.predict_ab(l_norm, group))))
    return [ab[s.decoding, s.temperature] for s in settings]


def colorize_settings(
    net: ColorizationNet, rgb: Tensor, settings: Sequence[Setting], working_size: int | None
) -> list[Tensor]:
    """One photo (uint8 RGB (3, H, W)) as ``predict`` renders it under each setting, in order."""
    lightness = full_resolution_l(rgb)
    predicted = predicted_ab(net, lightness, settings, working_size)
    return [render(lightness, ab, upsampling=s.upsampling) for s, ab in zip(settings, predicted)]


@dataclass
class Truth:
    """A photo as the metrics compare with it: RGB in [0, 1] (1, 3, H, W), its L* (H, W) and ab
    (1, 2, H, W). Whole-photo float planes: for small images (the benchmarks' frames and
    crops); :func:`evaluate` works in strips (:class:`TruthStrip`)."""

    rgb: Tensor
    lightness: Tensor
    ab: Tensor

    @classmethod
    def of(cls, rgb: Tensor) -> Truth:
        lab = rgb_to_lab(rgb)
        return cls(to_float_rgb(rgb)[None], lab[0], lab[None, 1:])

    def gray(self) -> Tensor:
        """The photo without its color, as a user sees it: uint8 RGB of (its L, ab = 0)."""
        return render(self.lightness, torch.zeros(2, 1, 1, device=self.lightness.device))


@dataclass(frozen=True)
class Strip:
    """Rows ``top`` .. ``bottom`` of a photo, measured from the rows ``start`` .. ``stop`` around
    them: SSIM's window reaches :data:`SSIM_BORDER` rows beyond a row, so each strip carries
    that many rows of context on either side (fewer at the photo's edges)."""

    start: int
    top: int
    bottom: int
    stop: int

    @property
    def core(self) -> slice:
        """The strip's own rows, within the context rows."""
        return slice(self.top - self.start, self.bottom - self.start)


#: Photo pixels per strip of evaluation work: about 0.4 GB of float planes at most (the truth's
#: and one output's RGB and Lab, and torchmetrics' SSIM maps), whatever the photo's size.
EVAL_STRIP_PIXELS = 1 << 19


def photo_strips(height: int, width: int, budget: int = EVAL_STRIP_PIXELS) -> Iterator[Strip]:
    """Strips covering the rows of a ``height`` x ``width`` photo once, each with its context
    rows, and at least :data:`SSIM_WINDOW` rows in all where the photo has them."""
    step = max(SSIM_WINDOW, strip_rows(width, budget))
    for top in range(0, height, step):
        bottom = min(top + step, height)
        stop = min(height, max(bottom + SSIM_BORDER, top + SSIM_WINDOW))
        start = max(0, min(top - SSIM_BORDER, stop - SSIM_WINDOW))
        yield Strip(start, top, bottom, stop)


@dataclass
class TruthStrip:
    """A strip of the photo as the metrics compare with it: RGB in [0, 1] (1, 3, n, W) of its
    context rows, ab (1, 2, m, W) of its own rows."""

    strip: Strip
    rgb: Tensor
    ab: Tensor

    @classmethod
    def of(cls, rgb: Tensor, strip: Strip) -> TruthStrip:
        """``rgb``: the whole photo, uint8 (3, H, W)."""
        rows = rgb[:, strip.start : strip.stop]
        ab = rgb_to_lab(rows[:, strip.core])[None, 1:]
        return cls(strip, to_float_rgb(rows)[None], ab)


class Moments:
    """Count, mean and sum of squared deviations of values seen in parts (Chan et al.'s
    pairwise update, float64): a photo's colorfulness, strip by strip."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, values: Tensor) -> None:
        n = values.numel()
        if n == 0:
            return
        mean = float(values.mean())
        m2 = float((values - mean).pow(2).sum())
        delta, total = mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def variance(self) -> float:
        return self.m2 / self.count if self.count else float("nan")


class ColorfulnessParts:
    """Hasler and Suesstrunk's colorfulness (:func:`lit_colorize.metrics.colorfulness`) of one
    image from its strips: the moments of rg and yb, on the 0-255 scale."""

    def __init__(self) -> None:
        self.rg, self.yb = Moments(), Moments()

    def add(self, rgb: Tensor) -> None:
        """``rgb``: (1, 3, n, W) in [0, 1], rows not seen before."""
        red, green, blue = (rgb.double() * 255.0).unbind(dim=-3)
        self.rg.add(red - green)
        self.yb.add(0.5 * (red + green) - blue)

    def value(self) -> float:
        spread = math.sqrt(self.rg.variance + self.yb.variance)
        return spread + 0.3 * math.hypot(self.rg.mean, self.yb.mean)


def psnr_of_mse(mse: float) -> float:
    """PSNR in dB of RGB in [0, 1] with this mean squared error, capped at :data:`PSNR_CAP_DB` (see there)."""
    return PSNR_CAP_DB if mse <= 0 else min(PSNR_CAP_DB, -10.0 * math.log10(mse))


def ssim_map(rgb: Tensor, truth: Tensor) -> Tensor:
    """torchmetrics' SSIM map (1, 3, n, W) of RGB in [0, 1] against the truth (Gaussian window
    11x11, sigma 1.5, data range 1), as the whole-photo metric always took it: its values
    :data:`SSIM_BORDER` or more from the strip's edges are Wang et al.'s (the rest lean on its
    reflect padding and are not used). The same function on a strip gives the same values."""
    _, full = structural_similarity_index_measure(rgb.float(), truth.float(), data_range=1.0, return_full_image=True)
    return full


class PhotoScores:
    """One output of one photo, measured strip by strip (:class:`TruthStrip`): sums in float64
    that give, once every row is in, what the whole-photo formulas give."""

    def __init__(self, auc: ABErrorAUC, height: int, width: int) -> None:
        self.auc, self.height, self.width = auc, height, width
        self.ab_error_sum = self.squared_error_sum = self.ssim_sum = 0.0
        self.ssim_count = 0
        self.colorfulness = ColorfulnessParts()

    def add(self, output: Tensor, truth: TruthStrip) -> None:
        """``output``: uint8 RGB (3, n, W), the output's rows of ``truth.strip`` (context included)."""
        rgb = to_float_rgb(output)[None]
        core = truth.strip.core
        own = rgb[..., core, :]
        ab = rgb_to_lab(own)[:, 1:]
        self.auc.update(ab, truth.ab)
        self.ab_error_sum += float((ab - truth.ab).pow(2).sum(dim=1).sqrt().double().sum())
        self.squared_error_sum += float((own.double() - truth.rgb[..., core, :].double()).pow(2).sum())
        self.colorfulness.add(own)
        self.add_ssim(rgb, truth)

    def add_ssim(self, rgb: Tensor, truth: TruthStrip) -> None:
        """The SSIM map's values at the strip's own rows whose window lies inside the photo."""
        if min(self.height, self.width) < SSIM_WINDOW:
            return
        strip, border = truth.strip, SSIM_BORDER
        first, last = max(strip.top, border), min(strip.bottom, self.height - border)
        if first >= last:
            return
        values = ssim_map(rgb, truth.rgb)[..., first - strip.start : last - strip.start, border : self.width - border]
        self.ssim_sum += float(values.double().sum())
        self.ssim_count += values.numel()

    def ab_error(self) -> float:
        return self.ab_error_sum / (self.height * self.width)

    def psnr(self) -> float:
        return psnr_of_mse(self.squared_error_sum / (3 * self.height * self.width))

    def ssim(self) -> float:
        return self.ssim_sum / self.ssim_count if self.ssim_count else float("nan")


class RowScores:
    """One row of the table, accumulated a photo at a time (photos differ in size): the AuC's
    error histogram across photos, the per-photo values in lists."""

    def __init__(self, grid_size: int, prior: Tensor | None, device: torch.device) -> None:
        self.auc = ABErrorAUC(grid_size=grid_size).to(device)
        self.grid_size, self.prior = grid_size, prior
        self.psnr: list[float] = []
        self.ssim: list[float] = []
        self.cf: list[float] = []
        self.delta_cf: list[float] = []
        self.ab_error: list[float] = []  # mean ab error of each photo, to rank them

    def photo(self, height: int, width: int) -> PhotoScores:
        """A photo's scores, to be filled strip by strip, then :meth:`add` ed."""
        return PhotoScores(self.auc, height, width)

    def add(self, photo: PhotoScores, truth_cf: float) -> None:
        """A photo whose every strip is in."""
        self.ab_error.append(photo.ab_error())
        self.psnr.append(photo.psnr())
        self.ssim.append(photo.ssim())
        cf = photo.colorfulness.value()
        self.cf.append(cf)
        self.delta_cf.append(abs(cf - truth_cf))

    def update(self, output: Tensor, truth: Truth, truth_cf: float) -> None:
        """``output``: uint8 RGB (3, H, W), what the user gets for the photo ``truth``, whole."""
        height, width = output.shape[-2:]
        strip = Strip(0, 0, height, height)
        photo = self.photo(height, width)
        photo.add(output, TruthStrip(strip, truth.rgb, truth.ab))
        self.add(photo, truth_cf)

    def rebalanced_auc(self) -> float:
        """The same error histogram weighted by the prior (the training colors', else the
        evaluated pixels' own): merged into a rebalanced metric rather than counted twice."""
        rebalanced = ABErrorAUC(rebalanced=True, grid_size=self.grid_size).to(self.auc.device)
        if self.prior is not None:
            rebalanced.set_prior(self.prior)
        rebalanced.merge_state(self.auc)
        with warnings.catch_warnings():  # torchmetrics counts a merge as no update, and would warn of an empty metric
            warnings.filterwarnings("ignore", message="The ``compute`` method of metric ABErrorAUC was called before")
            return float(rebalanced.compute())

    def summary(self) -> dict[str, float]:
        ssim = [s for s in self.ssim if not math.isnan(s)]
        return {
            "auc": float(self.auc.compute()),
            "auc_rebalanced": self.rebalanced_auc(),
            "psnr_mean": float(np.mean(self.psnr)),
            "psnr_median": float(np.median(self.psnr)),
            "ssim": float(np.mean(ssim)) if ssim else float("nan"),
            "cf": float(np.mean(self.cf)),
            "delta_cf": float(np.mean(self.delta_cf)),
        }


@dataclass
class Evaluation:
    """What :func:`evaluate` measured: a row per setting (``rows``, gray first, the truth's CF
    last), the photos evaluated, each setting's mean ab error per photo, and what was skipped
    (unreadable files, videos)."""

    settings: list[Setting]
    rows: dict[str, dict[str, float]]
    photos: list[Path]
    ab_errors: dict[str, list[float]]
    gray_photos: int = 0
    skipped: list[str] = field(default_factory=list)
    working_size: int | None = None
    videos: list[str] = field(default_factory=list)
    degrade_seed: int | None = None
    prior_from: str | None = None  # whose training color prior rebalanced AuC used (None: the model's own)

    def best(self) -> dict[str, str]:
        """The best setting on each metric (nearest the truth's CF, for CF), by name."""
        names = [s.name for s in self.settings]
        return {
            key: max(names, key=lambda name, key=key, sign=sign: self.goodness(name, key, sign)) for key, _, sign, _ in COLUMNS
        }

    def goodness(self, name: str, key: str, sign: int) -> float:
        """Row ``name``'s ``key``, oriented so that higher is better (NaN worst); ``sign`` as in COLUMNS."""
        value = self.rows[name][key]
        if math.isnan(value):
            return -math.inf
        return -abs(value - self.rows[TRUTH]["cf"]) if sign == 0 else sign * value

    def reference(self) -> Setting:
        """The setting the grid shows: the best by rebalanced AuC."""
        name = self.best()["auc_rebalanced"]
        return next(s for s in self.settings if s.name == name)

    def grid_photos(self) -> list[tuple[str, int]]:
        """(best | median | worst, photo index) by mean ab error under :meth:`reference`; fewer
        rows when there are fewer than three photos."""
        errors = self.ab_errors[self.reference().name]
        order = sorted(range(len(errors)), key=errors.__getitem__)
        picks: dict[int, str] = {}
        for label, index in (("best", order[0]), ("median", order[len(order) // 2]), ("worst", order[-1])):
            picks.setdefault(index, label)  # one or two photos: each shown once
        return [(label, index) for index, label in picks.items()]


def default_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def score_photo(
    net: ColorizationNet,
    rgb: Tensor,
    settings: Sequence[Setting],
    working_size: int | None,
    rows: Sequence[RowScores],
    budget: int = EVAL_STRIP_PIXELS,
    degrade: Callable[[Tensor], Tensor] | None = None,
) -> tuple[float, bool]:
    """Measure one photo (uint8 RGB (3, H, W)) into ``rows`` (gray, then one per setting), strip
    by strip: no float plane of the whole photo but its L, so memory is bounded as predict's
    is. Returns the photo's colorfulness and whether it is gray."""
    height, width = rgb.shape[-2:]
    lightness = full_resolution_l(rgb)
    gray_ab = torch.zeros(2, 1, 1, device=rgb.device)
    predicted = predicted_ab(net, lightness, settings, working_size, degrade)
    widened = [widen_ab(gray_ab, width)] + [widen_ab(ab, width, lightness, s.upsampling) for s, ab in zip(settings, predicted)]
    photos = [row.photo(height, width) for row in rows]
    truth_cf, max_chroma = ColorfulnessParts(), 0.0
    for strip in photo_strips(height, width, budget):
        truth = TruthStrip.of(rgb, strip)
        truth_cf.add(truth.rgb[..., strip.core, :])
        max_chroma = max(max_chroma, float(torch.linalg.vector_norm(truth.ab.float(), dim=-3).amax()))
        for photo, ab_wide in zip(photos, widened):
            photo.add(render_rows(lightness[strip.start : strip.stop], ab_wide, strip.start, height), truth)
    cf = truth_cf.value()
    for row, photo in zip(rows, photos):
        row.add(photo, cf)
    return cf, max_chroma <= GRAY_CHROMA


def unique_photos(photos: PhotoDataset, log: Callable[[str], None]) -> None:
    """Each photo once, however many times the inputs name it (a file given twice, a file and its
    folder, ``--files_from`` beside a folder): by resolved path, first place kept."""
    seen: dict[Path, int] = {}
    unique = []
    for source in photos.photos:
        key = source.path.resolve() if source.error is None else source.path
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 1:
            unique.append(source)
    for key, count in seen.items():
        if count > 1:
            log(f"{key} is among the inputs {count} times; counted once")
    photos.photos = unique


def evaluate(
    module: ColorizationModule,
    inputs: Sequence[str | Path],
    settings: Sequence[Setting] | None = None,
    working_size: int | None = None,
    max_photos: int | None = None,
    device: str | torch.device = "cpu",
    skip_dir: str | Path | None = None,
    log: Callable[[str], None] = default_log,
    degrade_seed: int | None = None,
    prior: Tensor | None = None,
) -> Evaluation:
    """Colorize every readable photo of ``inputs`` (files, or folders searched recursively;
    ``skip_dir``, the output folder, is never searched; a photo named twice counts once) under
    each setting and measure it, with gray beside. Unreadable files and videos are logged by
    path and skipped; DataError if no photo is readable. ``degrade_seed``: the network sees each
    photo's L degraded like an old photo (:func:`~lit_colorize.degrade.seeded_degradation`); the
    output keeps the photo's own clean L, so only the predicted ab differ from a clean run (the
    metrics compare ab; the gray row is the same). ``prior``: the color prior (bin counts) that
    rebalanced AuC weighs by, instead of the model's own training prior, so that models trained
    on different photos are read on one scale (``--prior_from``)."""
    device = torch.device(device)
    net = module.net.to(device).eval()
    settings = list(dict.fromkeys(settings or choose_settings(None, None, net)))  # a row per setting
    photos = PhotoDataset(inputs, output_dir=skip_dir)
    unique_photos(photos, log)
    if prior is None:
        prior = net.color_table.counts if net.is_classifier else None
    elif prior.numel() != net.grid_size**2:
        raise ConfigError(f"the prior has {prior.numel()} bins and the model {net.grid_size ** 2}: give a prior of a model with the same grid_size")
    rows = {name: RowScores(net.grid_size, prior, device) for name in [GRAY, *(s.name for s in settings)]}
    truth_cf: list[float] = []
    evaluated: list[Path] = []
    working_size = int(working_size or net.predict_short_side)  # as predict resolves it: stated in the report
    result = Evaluation(settings, {}, evaluated, {}, working_size=working_size, degrade_seed=degrade_seed)
    for index in range(len(photos)):
        if max_photos is not None and len(evaluated) >= max_photos:
            break
        item = photos[index]
        if item.is_video:
            result.videos.append(item.path)
            log(f"skipped: {item.path} is a video; evaluate measures photos (benchmarks/video.py measures videos)")
            continue
        if item.error is not None:
            result.skipped.append(item.path)
            log(f"skipped: {item.error}")
            continue
        with torch.no_grad():
            degrade = seeded_degradation(degrade_seed, len(evaluated), device)
            cf, gray = score_photo(net, item.rgb.to(device), settings, working_size, list(rows.values()), degrade=degrade)
        truth_cf.append(cf)
        result.gray_photos += int(gray)
        evaluated.append(Path(item.path))
        if len(evaluated) % 10 == 0:
            log(f"evaluated {len(evaluated)} photos")
    if not evaluated:
        raise DataError(
            f"none of the {len(photos)} file(s) of {[str(i) for i in inputs]} is a readable photo (listed above); "
            "give readable color photos"
        )
    result.rows = {name: scores.summary() for name, scores in rows.items()}
    result.rows[TRUTH] = {key: float("nan") for key, *_ in COLUMNS} | {"cf": float(np.mean(truth_cf))}
    result.ab_errors = {name: scores.ab_error for name, scores in rows.items()}
    return result


# --- the table --------------------------------------------------------------------------------
def cell(value: float, decimals: int) -> str:
    return "-" if math.isnan(value) else f"{value:.{decimals}f}"


def markdown_table(evaluation: Evaluation) -> str:
    """The rows as a Markdown table (also what the command prints)."""
    lines = ["| setting | " + " | ".join(header for _, header, *_ in COLUMNS) + " |", "| --- |" + " ---: |" * len(COLUMNS)]
    for name, values in evaluation.rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(values[key], d) for key, _, _, d in COLUMNS) + " |")
    return "\n".join(lines)


def best_lines(evaluation: Evaluation) -> list[str]:
    """Which setting is best on which metric, and where gray does better still."""
    truth_cf = evaluation.rows[TRUTH]["cf"]
    lines = []
    for key, header, sign, decimals in COLUMNS:
        name = evaluation.best()[key]
        what = f"CF nearest the truth's ({cell(truth_cf, decimals)})" if sign == 0 else header
        line = f"- {what}: {name} ({cell(evaluation.rows[name][key], decimals)})"
        if evaluation.goodness(GRAY, key, sign) > evaluation.goodness(name, key, sign):
            line += f"; gray does better ({cell(evaluation.rows[GRAY][key], decimals)})"
        lines.append(line)
    return lines


def summary_line(evaluation: Evaluation) -> str:
    size = evaluation.working_size or "the model's own"
    return (
        f"{len(evaluation.photos)} photos at their own resolution (working size: {size}), "
        f"{evaluation.gray_photos} of them gray (no pixel of chroma above {GRAY_CHROMA:g}; evaluated too), "
        f"{len(evaluation.skipped)} unreadable and skipped"
        + (f", the network's input degraded like an old photo (seed {evaluation.degrade_seed})" if evaluation.degrade_seed is not None else "")
        + (f", {len(evaluation.videos)} videos skipped (evaluate measures photos)" if evaluation.videos else "")
        + (f", rebalanced AuC with the color prior of {evaluation.prior_from}" if evaluation.prior_from else "")
    )


LEGEND = (
    "AuC: area under the cumulative ab-error curve, thresholds 0-150 (Zhang et al. 2016), ab of the output RGB "
    "against the photo's; rebal: pixels weighted by the inverse training color prior of their bin. PSNR (dB, per "
    f"photo, capped at {PSNR_CAP_DB:.1f} = uint8 rounding noise) as mean and median over photos; SSIM mean over "
    "photos; CF: mean colorfulness (Hasler and Suesstrunk 2003), the truth row is the photos'; ΔCF: mean "
    "|CF - CF(photo)|."
)


def markdown_report(evaluation: Evaluation, checkpoint: str | Path, grid: Sequence[tuple[str, Path]]) -> str:
    """metrics.md: what was evaluated, the table, the best setting per metric, the legend, the grid's photos."""
    parts = [
        f"# Evaluation of {checkpoint}",
        "",
        summary_line(evaluation) + ".",
        "",
        markdown_table(evaluation),
        "",
        "Best setting per metric:",
        "",
        *best_lines(evaluation),
        "",
        LEGEND,
        "",
        f"grid.png (columns gray | truth | {evaluation.reference().name}), rows by mean ab error:",
        "",
        *(f"- {label}: {path}" for label, path in grid),
    ]
    return "\n".join(parts) + "\n"


def csv_table(evaluation: Evaluation) -> str:
    """The rows as CSV, one column per metric (empty where it does not apply)."""
    by_name = {s.name: s for s in evaluation.settings}
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["setting", "decoding", "temperature", "upsampling", "photos", *(key for key, *_ in COLUMNS)])
    for name, values in evaluation.rows.items():
        setting = by_name.get(name)
        decoding = "" if setting is None else setting.decoding or "regression"
        temperature = "" if setting is None or setting.decoding is None else f"{setting.temperature:g}"
        numbers = ["" if math.isnan(values[key]) else repr(values[key]) for key, *_ in COLUMNS]
        upsampling = "" if setting is None else setting.upsampling
        writer.writerow([name, decoding, temperature, upsampling, len(evaluation.photos), *numbers])
    return stream.getvalue()


# --- the grid ---------------------------------------------------------------------------------
def tile(rgb: Tensor, height: int = GRID_TILE_HEIGHT, max_width: int = GRID_TILE_MAX_WIDTH) -> Image.Image:
    """uint8 RGB (3, H, W) as a PIL image ``height`` tall, aspect kept, unless that is wider than
    ``max_width``: then that wide (and less tall). A 1x10000 strip stays a thin tile."""
    image = Image.fromarray(rgb.permute(1, 2, 0).cpu().numpy())
    scale = min(height / image.height, max_width / image.width)
    size = (max(1, min(max_width, round(image.width * scale))), max(1, min(height, round(image.height * scale))))
    return image.resize(size, Image.Resampling.LANCZOS)


def grid_image(rows: Sequence[Sequence[Image.Image]], height: int = GRID_TILE_HEIGHT, gap: int = 4) -> Image.Image:
    """Rows of tiles (at most ``height`` tall) on a white canvas, a row ``height`` apart."""
    widths = [sum(t.width for t in row) + gap * (len(row) - 1) for row in rows]
    canvas = Image.new("RGB", (max(widths), len(rows) * height + gap * (len(rows) - 1)), "white")
    for r, row in enumerate(rows):
        left = 0
        for image in row:
            canvas.paste(image, (left, r * (height + gap)))
            left += image.width + gap
    return canvas


def grid_rows(module: ColorizationModule, evaluation: Evaluation, device: torch.device) -> list[list[Image.Image]]:
    """Tiles gray | truth | output of the grid's photos, colorized again under the reference
    setting (cheaper than keeping every photo's images until the ranking is known); one
    full-size image at a time."""
    rows = []
    for _, index in evaluation.grid_photos():
        rgb = PhotoDataset([evaluation.photos[index]])[0].rgb.to(device)
        lightness = full_resolution_l(rgb)
        with torch.no_grad():
            degrade = seeded_degradation(evaluation.degrade_seed, index, device)
            reference = evaluation.reference()
            (ab,) = predicted_ab(module.net, lightness, [reference], evaluation.working_size, degrade)
        gray = tile(render(lightness, torch.zeros(2, 1, 1, device=device)))
        rows.append([gray, tile(rgb), tile(render(lightness, ab, upsampling=reference.upsampling))])
    return rows


# --- the command ------------------------------------------------------------------------------
def listed(values: Sequence[str] | None) -> list[str] | None:
    """Option values given either way: ``--x a b`` or ``--x '[a, b]'`` (YAML list, as LightningCLI takes)."""
    if values is None:
        return None
    items: list[str] = []
    for value in values:
        parsed = yaml.safe_load(value) if value.strip().startswith("[") else [value]
        items.extend(str(v) for v in (parsed if isinstance(parsed, list) else [parsed]))
    return items


def check_outputs(out: Path, overwrite: bool, inputs: Sequence[str | Path]) -> None:
    """Before the model loads: ``--out`` is a folder this process can write (or create), it is
    no input folder (the next run would measure grid.png as a photo), and no output is replaced
    unasked. An ``--out`` inside an input folder is fine: the search skips it."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for {', '.join(OUTPUT_FILES)}")
    existing = next(p for p in (out.absolute(), *out.absolute().parents) if os.path.lexists(p))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == out.absolute() else f" ({existing}, where it would be created, is not a writable folder)"
        raise ConfigError(f"--out {out} is not writable{where}; choose another --out")
    for entry in inputs:
        folder = Path(entry).expanduser()
        if folder.is_dir() and folder.resolve() == out.resolve():
            raise ConfigError(
                f"--out {out} is the input folder {entry}: the next run would measure its grid.png as a photo; "
                f"write elsewhere, e.g. --out {folder / 'evaluation'} (a folder inside an input folder is skipped)"
            )
    existing_files = [name for name in OUTPUT_FILES if (out / name).exists()]
    if existing_files and not overwrite:
        raise ConfigError(f"{out} already holds {', '.join(existing_files)}; pass --overwrite to replace them, or another --out")


def choose_device(name: str | None) -> torch.device:
    """``--device``, or CUDA when there is one, else the CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device; give cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU here; use --device cpu")
    return device


def positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog="lit-colorize evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", default=None, help="a lit-colorize checkpoint (.ckpt); default: the shipped model")
    parser.add_argument("--data.inputs", dest="inputs", nargs="+", default=[],
                        help="color photos: files or folders (searched recursively), e.g. '[photos/]'")  # fmt: skip
    parser.add_argument("--files_from", default=None,
                        help="a text file of photo paths, one a line (e.g. a held-out split), with or instead of --data.inputs")  # fmt: skip
    parser.add_argument("--out", default="evaluation", help="folder for metrics.md, metrics.csv, grid.png")
    parser.add_argument("--working_size", type=int, default=None, help="the network's shorter side (default: the model's own)")
    parser.add_argument("--temperatures", nargs="+", default=None, help="e.g. 0 0.8 or '[0, 0.8]'")
    parser.add_argument("--decodings", nargs="+", default=None, help="mode_mean, annealed_mean: one, or one per T")
    parser.add_argument("--upsampling", nargs="+", default=None, metavar="{" + ",".join(UPSAMPLINGS) + "}",
                        help=f"how ab reaches the photo's size; several: each setting under each (default: {DEFAULT_UPSAMPLING}, as predict)")
    parser.add_argument("--max_photos", type=int, default=None, help="evaluate the first N readable photos")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if there is one)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--degrade", type=int, default=None, metavar="SEED",
                        help="degrade the network's input like an old photo (grain, blur, JPEG, fade, tone, scratches, dust), seeded")  # fmt: skip
    parser.add_argument("--prior_from", default=None, metavar="CKPT",
                        help="rebalanced AuC weighs pixels by this checkpoint's training color prior (default: the model's own), "
                        "so models trained on different photos compare on one scale")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> Evaluation:
    """The ``evaluate`` subcommand: user errors (lit_colorize.errors) end it with one line in cli.main."""
    from lit_colorize.colorizer import module_from_checkpoint

    args = parse_args(argv)
    out = Path(args.out)
    temperatures = listed(args.temperatures)
    if temperatures is not None:
        temperatures = check_temperatures(temperatures, "--temperatures")
    working_size, max_photos = check_working_size(args.working_size, "--working_size"), positive("--max_photos", args.max_photos)
    device = choose_device(args.device)
    inputs = listed(args.inputs) + (read_file_list(args.files_from) if args.files_from else [])
    if not inputs:
        raise ConfigError("no photos: give --data.inputs '[folder/]' or --files_from list.txt")
    check_outputs(out, args.overwrite, inputs)
    try:  # a missing input or an empty folder: one line, before the model loads
        PhotoDataset(inputs, output_dir=out)
    except FileNotFoundError as error:
        if not all(Path(i).expanduser().exists() for i in inputs):
            raise  # its message names the missing input and what to give
        raise DataError(f"{error}; give --data.inputs files or folders of color photos") from None
    checkpoint = args.ckpt_path or pretrained_checkpoint()
    module = module_from_checkpoint(checkpoint)
    prior = None
    if args.prior_from is not None:
        prior_net = module_from_checkpoint(args.prior_from).net
        if not prior_net.is_classifier:
            raise ConfigError(f"--prior_from {args.prior_from} is a regression model: it has no color prior; give a classification checkpoint")
        prior = prior_net.color_table.counts
    settings = choose_settings(temperatures, listed(args.decodings), module.net, listed(args.upsampling))
    if not module.is_classifier and (temperatures or args.decodings):
        default_log("a regression model: --temperatures and --decodings do not apply")
    evaluation = evaluate(module, inputs, settings, working_size, max_photos, device, skip_dir=out, degrade_seed=args.degrade, prior=prior)
    evaluation.prior_from = args.prior_from
    grid = [(label, evaluation.photos[i]) for label, i in evaluation.grid_photos()]
    report = markdown_report(evaluation, checkpoint, grid)
    print(report, end="", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "metrics.md", "w", encoding="utf-8") as stream:
        stream.write(report)
    with atomic_write(out / "metrics.csv", "w", encoding="utf-8", newline="") as stream:
        stream.write(csv_table(evaluation))
    with atomic_write(out / "grid.png", "wb") as stream:
        grid_image(grid_rows(module, evaluation, device)).save(stream, format="PNG")
    print(f"wrote {out / 'metrics.md'}, {out / 'metrics.csv'} and {out / 'grid.png'}")
    return evaluation

