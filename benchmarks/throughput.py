"""Training, decode and bin-table throughput of lit-colorize against the core default and the thesis.

Why: every speed claim of the README comes from one run of this script, measured side by
side on one machine, as ratios. Training pipelines, each timed in interleaved rounds:

  (a) ours, full pipeline, the defaults: DataLoader of uint8 RGB -> on the device, the batch
      augmentation of the datamodule that trains at that size (CIFAR100Subset's crop + flip at
      32x32, Landscape's rotation + crop + flips otherwise; one warp, ``lit_colorize.augment``)
      -> Lab + bins in torch ->
      forward / backward / optimizer step, with the fused chunked head loss, channels_last,
      and bf16 autocast where the device computes bf16 natively;
  (b) the same step on L and bin targets made once in advance: the compute limit;
  (d) the core default before the speed work: the same full pipeline in fp32, NCHW, plain
      cross-entropy over the full logits tensor;
  (c) the thesis pipeline (``thesis_reference.py``: per-sample skimage + np.vectorize in the
      Dataset) feeding the step of (d); the thesis augmented its data once, offline, so (c)
      has no augmentation in the loop (which only flatters it);
  (e) (a) in the other precision (bf16 autocast where fp32 is the default, or fp32);
  (f) (a) with ``compile: true`` (torch.compile of the U-Net body), at the --compile-sizes.

It also splits a synchronized step of (a) into data side / forward+backward / optimizer, and
times decoding (ColorTable + kornia against np.vectorize + skimage) and building the bin
table (ColorHistogram + ColorTable.fill against per-bin Python loops). The last block
prints each target of the speed issue with its measured ratio.

    python -m benchmarks.throughput --quick     # smoke run, about a minute
    python -m benchmarks.throughput             # the numbers for the README (about 8 min on 2 CPU cores)
    python -m benchmarks.throughput --device cuda --sizes 128 --batch-size 64   # see gpu_check.sh

Data loading runs in the main process by default (``--workers 0``) for all pipelines alike.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import interleaved_seconds, machine_line, synchronize, timed, training_augmentation
from benchmarks.thesis_reference import ThesisColorTable, ThesisDataset, build_thesis_table, thesis_decode
from datamodules.toyshapes import ImageTensorDataset, make_toy_shapes
from lit_colorize.bins import ColorHistogram, ColorTable
from lit_colorize.color import join_lab, rgb_to_lab
from lit_colorize.module import ColorizationModule
from lit_colorize.precision import default_precision

GRID_SIZE = 18
TEMPERATURE = 0.8
#: The timed training steps run in up to this many rounds, interleaving (a), (b) and (c).
ROUNDS = 5


@dataclass(frozen=True)
class SizeConfig:
    """What to run at one image size; the step counts keep the default run near 5 minutes on 2 cores."""

    size: int
    widths: tuple[int, ...]
    num_images: int  # training images the loaders cycle over
    warmup: int  # untimed steps before each timing
    steps: int  # timed steps for (a) and (b)
    ref_steps: int  # timed steps for (c), the slow reference
    decode_images: int
    build_images: int


CONFIGS: dict[int, SizeConfig] = {
    32: SizeConfig(32, (8, 16, 32), num_images=1024, warmup=3, steps=100, ref_steps=40, decode_images=256, build_images=512),
    # 3.6 s a step for (a) at batch 32 on 2 idle CPU cores, 8 s for (c) and (d): hence so few.
    128: SizeConfig(128, (16, 32, 64, 128, 256), num_images=128, warmup=1, steps=10, ref_steps=3, decode_images=32, build_images=32),
}
#: Targets of the speed issue, checked in the last block of the report.
TARGET_PIPELINE = 0.95  # a/b
TARGET_END_TO_END = 1.5  # a/d
TARGET_DECODE = 100.0
TARGET_BUILD = 20.0
TARGET_DATA_SHARE = 0.10  # on an H100 at 128x128


def quick(config: SizeConfig, batch_size: int) -> SizeConfig:
    """A smoke-test version of ``config``: a couple of steps on a handful of images."""
    return replace(
        config, num_images=4 * batch_size, warmup=1, steps=2, ref_steps=2, decode_images=batch_size, build_images=batch_size
    )


# --- timing -------------------------------------------------------------------------------
def interleaved_rates(
    pipelines: dict[str, tuple[Callable[[], None], int]], warmup: int, batch_size: int, device: torch.device
) -> dict[str, float]:
    """Images/s of each pipeline, given as name -> (step, timed steps); a step trains on one
    batch of ``batch_size`` images. Timed as ``benchmarks.common.interleaved_seconds`` says."""
    seconds = interleaved_seconds(pipelines, ROUNDS, warmup, device)
    return {name: steps * batch_size / seconds[name] for name, (_, steps) in pipelines.items()}


def forever(loader: Iterable) -> Iterator:
    """Batches of ``loader``, epoch after epoch."""
    while True:
        yield from loader


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """bf16 autocast as Lightning's "bf16-mixed" applies it, or nothing for fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def train_step(module: ColorizationModule, optimizer: Optimizer, batch: dict[str, Tensor], amp: torch.dtype | None = None) -> None:
    """One training step as the Trainer would run it, minus logging: loss, backward, update."""
    with autocast(batch["l"].device, amp):
        loss = module.compute_loss(batch).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def loader(dataset: Dataset, batch_size: int, workers: int) -> DataLoader:
    """The same loader settings for every pipeline."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers)


# --- the three training pipelines ----------------------------------------------------------
def train_ours(
    module: ColorizationModule, optimizer: Optimizer, images: Tensor, batch_size: int, workers: int, device: torch.device,
    augmentation: nn.Module, amp: torch.dtype | None = None,
) -> Callable[[], None]:
    """(a), (d), (e), (f): uint8 RGB through the loader; augmentation, Lab and bins on the device,
    as ``ColorizationModule.on_after_batch_transfer`` does them in training."""
    batches = forever(loader(ImageTensorDataset(images), batch_size, workers))

    def step() -> None:
        rgb = next(batches).to(device, non_blocking=True)
        train_step(module, optimizer, module.prepare_training_batch(rgb, augmentation), amp)

    return step


def train_premade(
    module: ColorizationModule, optimizer: Optimizer, images: Tensor, batch_size: int, device: torch.device,
    amp: torch.dtype | None = None,
) -> Callable[[], None]:
    """(b) L and bin targets made once, before timing: only the model step is left."""
    with torch.no_grad():
        premade = []
        for start in range(0, len(images) - batch_size + 1, batch_size):
            premade.append(module.prepare_batch(images[start : start + batch_size].to(device)))
    batches = forever(premade)

    def step() -> None:
        train_step(module, optimizer, next(batches), amp)

    return step


def train_thesis(
    module: ColorizationModule, optimizer: Optimizer, images: Tensor, batch_size: int, workers: int, device: torch.device
) -> Callable[[], None]:
    """(c) the thesis Dataset (skimage + np.vectorize per sample) feeding the core default's step."""
    batches = forever(loader(ThesisDataset(images, GRID_SIZE), batch_size, workers))

    def step() -> None:
        l_norm, bins = next(batches)
        train_step(module, optimizer, {"l": l_norm.to(device, non_blocking=True), "bins": bins.to(device, non_blocking=True)})

    return step


def step_breakdown(
    module: ColorizationModule, optimizer: Optimizer, images: Tensor, batch_size: int, workers: int, device: torch.device,
    augmentation: nn.Module, amp: torch.dtype | None, steps: int,
) -> dict[str, float]:
    """Shares of a step of (a), synchronized between the parts: data side (loader, transfer,
    augmentation, Lab, bins), forward + backward, optimizer step. The synchronization
    removes any overlap, so the data share is an upper bound of what it costs."""
    batches = forever(loader(ImageTensorDataset(images), batch_size, workers))
    spent = {"data": 0.0, "forward+backward": 0.0, "optimizer": 0.0}
    for index in range(steps + 1):  # the first step is a warm-up
        synchronize(device)
        t0 = time.perf_counter()
        batch = module.prepare_training_batch(next(batches).to(device, non_blocking=True), augmentation)
        synchronize(device)
        t1 = time.perf_counter()
        with autocast(device, amp):
            loss = module.compute_loss(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        synchronize(device)
        t2 = time.perf_counter()
        optimizer.step()
        synchronize(device)
        t3 = time.perf_counter()
        if index:
            spent["data"] += t1 - t0
            spent["forward+backward"] += t2 - t1
            spent["optimizer"] += t3 - t2
    total = sum(spent.values())
    return {name: value / total for name, value in spent.items()}


# --- bin table and decode -----------------------------------------------------------------
def build_ours(images: Tensor, batch_size: int, device: torch.device) -> ColorTable:
    """Our bin table: batched Lab on the device, histogram sums, one vectorized fill."""
    histogram = ColorHistogram(GRID_SIZE, device)
    for start in range(0, len(images), batch_size):
        histogram.update(rgb_to_lab(images[start : start + batch_size].to(device))[:, 1:])
    table = ColorTable(GRID_SIZE).to(device)
    table.fill(histogram)
    return table


def table_agreement(ours: ColorTable, ref: ThesisColorTable) -> str:
    """How far our table is from the reference on the occupied bins (empty ones only borrow colors)."""
    occupied = ref.counts > 0
    counts = ours.counts.double().cpu().numpy()
    mode = np.abs(ours.mode_ab.double().cpu().numpy() - ref.mode_ab)[occupied].max()
    mean = np.abs(ours.mean_ab.double().cpu().numpy() - ref.mean_ab)[occupied].max()
    same_counts = "equal" if np.array_equal(counts, ref.counts) else f"max diff {np.abs(counts - ref.counts).max():.0f}"
    return f"counts {same_counts}, max |mode diff| {mode:.2g}, max |mean diff| {mean:.2g} ab units"


def trainer_fit_rates(
    config: SizeConfig, batch_size: int, workers: int, device: torch.device, precision: str, steps: int,
    augmentation: nn.Module, rounds: int = 2,
) -> dict[str, float]:
    """Images/s of a real ``Trainer.fit`` (Lightning's loop, metrics, logging, NaN check) with the
    defaults against the core default, alternating fits so load changes hit both: training
    steps (the first few of each fit, warm-up, not timed) and the validation epoch that ends
    the fit (loss, accuracy top-1/top-5, AuC, PSNR, SSIM, colorfulness)."""
    import lightning as L  # noqa: PLC0415
    from lightning.pytorch.callbacks import Callback  # noqa: PLC0415

    from datamodules.toyshapes import ToyShapes  # noqa: PLC0415

    class StepClock(Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []
            self.validation = 0.0

        def on_train_batch_start(self, *args: object) -> None:
            synchronize(device)
            self.starts.append(time.perf_counter())

        def on_validation_epoch_start(self, *args: object) -> None:
            synchronize(device)
            self.validation -= time.perf_counter()

        def on_validation_epoch_end(self, *args: object) -> None:
            synchronize(device)
            self.validation += time.perf_counter()

    warmup, val_batches = 3, 4
    spent = {"ours": 0.0, "core": 0.0, "ours_val": 0.0, "core_val": 0.0}
    for _ in range(rounds):
        for name, options, run_precision in (("core", CORE_DEFAULT, "32-true"), ("ours", {}, precision)):
            torch.manual_seed(0)
            module = ColorizationModule(widths=list(config.widths), grid_size=GRID_SIZE, **options)
            clock = StepClock()
            trainer = L.Trainer(
                accelerator=device.type, devices=1, precision=run_precision, max_epochs=1, num_sanity_val_steps=0,
                logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                callbacks=[clock],
            )  # fmt: skip
            data = ToyShapes(num_train=(warmup + steps + 1) * batch_size, num_val=val_batches * batch_size,
                             image_size=config.size, batch_size=batch_size, num_workers=workers)  # fmt: skip
            data.train_augmentation = augmentation  # applied by the module after the transfer, as for real data
            trainer.fit(module, data)
            spent[name] += clock.starts[warmup + steps] - clock.starts[warmup]
            spent[f"{name}_val"] += clock.validation
    images = {"ours": steps * batch_size, "core": steps * batch_size}
    images.update(ours_val=val_batches * batch_size, core_val=val_batches * batch_size)
    return {name: rounds * images[name] / seconds for name, seconds in spent.items()}


@dataclass
class Result:
    size: int
    params: int
    train: dict[str, float]
    compile_s: float | None  # compilation + the first two steps of (f)
    breakdown: dict[str, float]
    fit: dict[str, float] | None  # Trainer.fit images/s, ours and core
    decode: dict[str, float]  # images/s, plus "images"
    build: dict[str, float]  # images/s, plus "images"
    steps: str
    checks: list[str]


def make_module(config: SizeConfig, device: torch.device, **options: object) -> tuple[ColorizationModule, Optimizer]:
    """A fresh module (seeded: every pipeline starts from the same weights) and its optimizer."""
    torch.manual_seed(0)
    module = ColorizationModule(widths=list(config.widths), grid_size=GRID_SIZE, **options).to(device)
    module.configure_model()
    module.train()
    return module, module.configure_optimizers()


#: The core issue's default before the speed work: plain cross-entropy, NCHW, fp32.
CORE_DEFAULT = dict(fused_head_loss=False, channels_last=False)


def run_size(config: SizeConfig, args: argparse.Namespace, device: torch.device, log: Callable[[str], None]) -> Result:
    size, batch_size = config.size, args.batch_size
    warmup = config.warmup if args.warmup is None else args.warmup
    images = torch.from_numpy(make_toy_shapes(max(config.num_images, batch_size), size=size, seed=0))
    module, optimizer = make_module(config, device)
    params = sum(p.numel() for p in module.parameters())
    checks = []
    amp, other_amp = (torch.bfloat16, None) if args.precision == "bf16-mixed" else (None, torch.bfloat16)

    # Bin table first, so the decode below uses real tables.
    log(f"[{size}] bin table")
    build_set = torch.from_numpy(make_toy_shapes(config.build_images, size=size, seed=1))
    build_ours(build_set[:batch_size], batch_size, device)  # warm-up
    ours_s, table = timed(lambda: build_ours(build_set, batch_size, device), device)
    ref_s, ref_table = timed(lambda: build_thesis_table(build_set.numpy(), GRID_SIZE), device)
    build = {"ours": len(build_set) / ours_s, "ref": len(build_set) / ref_s, "images": len(build_set)}
    module.color_table.load_state_dict(table.state_dict())
    checks.append(f"table vs reference: {table_agreement(table, ref_table)}")

    ref_l, ref_bins = ThesisDataset(images[:1], GRID_SIZE)[0]
    with torch.no_grad():
        ours_batch = module.prepare_batch(images[:1].to(device))
    agree = (ours_batch["bins"][0].cpu() == ref_bins).double().mean().item()
    l_diff = (ours_batch["l"][0].cpu() - ref_l).abs().max().item()
    checks.append(f"training targets vs reference (1 image): bins agree on {agree:.2%} of pixels, max |L diff| {l_diff:.1e}")

    steps, ref_steps = args.steps or config.steps, args.ref_steps or config.ref_steps
    augment = training_augmentation(size)
    premade_module, premade_optimizer = make_module(config, device)
    core, core_optimizer = make_module(config, device, **CORE_DEFAULT)
    thesis_core, thesis_optimizer = make_module(config, device, **CORE_DEFAULT)
    other, other_optimizer = make_module(config, device)
    pipelines = {
        "a": (train_ours(module, optimizer, images, batch_size, args.workers, device, augment, amp), steps),
        "b": (train_premade(premade_module, premade_optimizer, images, batch_size, device, amp), steps),
        "d": (train_ours(core, core_optimizer, images, batch_size, args.workers, device, augment), ref_steps),
        "c": (train_thesis(thesis_core, thesis_optimizer, images, batch_size, args.workers, device), ref_steps),
        "e": (train_ours(other, other_optimizer, images, batch_size, args.workers, device, augment, other_amp), steps),
    }
    compile_s = None
    if size in args.compile_sizes:
        log(f"[{size}] compiling (f)")
        compiled, compiled_optimizer = make_module(config, device, compile=True)
        compiled_step = train_ours(compiled, compiled_optimizer, images, batch_size, args.workers, device, augment, amp)
        compile_s = timed(lambda: (compiled_step(), compiled_step()), device)[0]
        pipelines["f"] = (compiled_step, steps)
    log(f"[{size}] training {', '.join(pipelines)}: {warmup} warm-up + {steps} steps ({ref_steps} for c and d), interleaved")
    train = interleaved_rates(pipelines, warmup, batch_size, device)

    log(f"[{size}] step breakdown")
    breakdown = step_breakdown(module, optimizer, images, batch_size, args.workers, device, augment, amp, max(2, min(steps, 10)))

    fit = None
    if size in args.fit_sizes:
        log(f"[{size}] Trainer.fit, defaults against the core default")
        fit = trainer_fit_rates(config, batch_size, args.workers, device, args.precision, max(2, min(steps, 30)), augment)

    log(f"[{size}] decode")
    module.eval()
    core.eval()
    core.color_table.load_state_dict(table.state_dict())
    decode_set = torch.from_numpy(make_toy_shapes(config.decode_images, size=size, seed=2))
    with torch.no_grad():
        l_batches = [module.prepare_batch(decode_set[s : s + batch_size].to(device))["l"] for s in range(0, len(decode_set), batch_size)]
        logits = [module(l) for l in l_batches]  # as the default module emits them (channels_last)
        thesis_logits = [out.contiguous() for out in logits]  # as the thesis's model emitted them (NCHW)
        n = len(decode_set)

        def ours_decode() -> None:
            for l, out in zip(l_batches, logits):
                join_lab(l, module.color_table.decode(out, TEMPERATURE)).cpu()

        def read_once() -> None:  # what no decoder can skip: one pass over every class score (a max)
            for out in logits:
                out.amax(dim=1)

        def ref_decode() -> None:
            for l, out in zip(l_batches, thesis_logits):
                thesis_decode(out.cpu().numpy(), l.cpu().numpy(), ref_table, TEMPERATURE)

        def ours_colorize() -> None:
            for l in l_batches:
                module.net.colorize(l, [TEMPERATURE]).cpu()

        def ref_colorize() -> None:
            for l in l_batches:
                thesis_decode(core(l).cpu().numpy(), l.cpu().numpy(), ref_table, TEMPERATURE)

        ours_decode()  # warm-up
        read_once()
        module.net.colorize(l_batches[0], [TEMPERATURE])
        decode = {
            "ours": n / timed(ours_decode, device)[0],
            "ref": n / timed(ref_decode, device)[0],
            "read_once": n / timed(read_once, device)[0],
            "ours_fwd": n / timed(ours_colorize, device)[0],
            "ref_fwd": n / timed(ref_colorize, device)[0],
            "images": n,
        }
        ours_rgb = module.net.colorize(l_batches[0], [TEMPERATURE])[:, 0].permute(0, 2, 3, 1).double().cpu().numpy()
        ref_rgb = thesis_decode(thesis_logits[0].cpu().numpy(), l_batches[0].cpu().numpy(), ref_table, TEMPERATURE)
        checks.append(f"decode vs reference: max |RGB diff| {np.abs(ours_rgb - ref_rgb).max():.1e} (RGB in [0, 1])")

    timing = f"{warmup} warm-up + {steps} steps (c, d: {ref_steps}), interleaved"
    return Result(size, params, train, compile_s, breakdown, fit, decode, build, timing, checks)


# --- report -------------------------------------------------------------------------------
def verdict(value: float, target: float) -> str:
    return "met" if value >= target else "NOT met"


def report(results: Sequence[Result], args: argparse.Namespace, machine: str) -> list[str]:
    other = "fp32" if args.precision == "bf16-mixed" else "bf16 autocast"
    lines = [
        "lit-colorize throughput" + (" (--quick smoke run: numbers are not meaningful)" if args.quick else ""),
        machine,
        f"settings: batch {args.batch_size}, DataLoader workers {args.workers}, Adam, grid {GRID_SIZE} ({GRID_SIZE**2} bins), "
        f"ToyShapes images; precision of (a), (b), (f): {args.precision} ({args.precision_reason})",
        "",
        "training, images/s (forward + backward + optimizer step; all but b include data loading)",
        f"{'size':<9}{'params':>11}{'(a) ours':>10}{'(b) limit':>11}{'(d) core':>10}{'(c) thesis':>12}"
        f"{'a/b':>7}{'a/d':>7}{'a/c':>7}  timed",
    ]
    for r in results:
        t = r.train
        lines.append(
            f"{f'{r.size}x{r.size}':<9}{r.params:>11,}{t['a']:>10.1f}{t['b']:>11.1f}{t['d']:>10.1f}{t['c']:>12.1f}"
            f"{t['a'] / t['b']:>7.2f}{t['a'] / t['d']:>6.2f}x{t['a'] / t['c']:>6.2f}x  {r.steps}"
        )
    lines += [
        "  (a) uint8 DataLoader -> on the device: augmentation (32x32: CIFAR100Subset's crop + flip; larger:",
        "  Landscape's rotation + crop + flips), Lab + bins in torch -> step with the defaults (fused chunked head",
        "  loss, channels_last); (b) the same step on L + bins made in advance; (d) the core default: (a) in fp32,",
        "  NCHW, plain cross-entropy; (c) thesis Dataset (skimage rgb2lab + np.vectorize binning per sample, no",
        "  augmentation: the thesis augmented offline) -> the step of (d).",
        "",
        f"options, images/s of the full pipeline against (a)",
        f"{'size':<9}{f'(e) {other}':>20}{'e/a':>7}{'(f) compile':>13}{'f/a':>7}  compilation + first 2 steps of (f)",
    ]
    for r in results:
        t = r.train
        compiled = (f"{t['f']:>13.1f}{t['f'] / t['a']:>7.2f}  {r.compile_s:.0f} s") if "f" in t else f"{'-':>13}{'-':>7}  not run"
        lines.append(f"{f'{r.size}x{r.size}':<9}{t['e']:>20.1f}{t['e'] / t['a']:>7.2f}{compiled}")
    lines += [
        "",
        "step of (a), synchronized between parts (share of time)",
        f"{'size':<9}{'data side':>11}{'fwd+bwd':>10}{'optimizer':>11}   data side = loader, transfer, augmentation, Lab, bins",
    ]
    for r in results:
        b = r.breakdown
        lines.append(f"{f'{r.size}x{r.size}':<9}{b['data']:>10.1%}{b['forward+backward']:>10.1%}{b['optimizer']:>11.1%}")
    lines += [
        "",
        "Trainer.fit end to end, images/s (Lightning loop, augmentation, metrics, logging, NaN check; defaults vs core default)",
        f"{'size':<9}{'train ours':>11}{'core':>8}{'ratio':>8}  |{'validation ours':>16}{'core':>8}{'ratio':>8}",
    ]
    for r in results:
        if r.fit:
            f = r.fit
            lines.append(
                f"{f'{r.size}x{r.size}':<9}{f['ours']:>11.1f}{f['core']:>8.1f}{f['ours'] / f['core']:>7.2f}x"
                f"  |{f['ours_val']:>16.1f}{f['core_val']:>8.1f}{f['ours_val'] / f['core_val']:>7.2f}x"
            )
        else:
            lines.append(f"{f'{r.size}x{r.size}':<9}  not run (see --fit-sizes)")
    lines += [
        "",
        f"decode, images/s (class scores -> bin colors at T={TEMPERATURE} -> Lab to RGB)",
        f"{'size':<9}{'images':>7}{'ours':>10}{'thesis':>10}{'ratio':>8}{'ceiling':>9}  |{'ours+fwd':>10}{'thesis+fwd':>12}{'ratio':>8}",
    ]
    for r in results:
        d = r.decode
        lines.append(
            f"{f'{r.size}x{r.size}':<9}{d['images']:>7}{d['ours']:>10.1f}{d['ref']:>10.1f}{d['ours'] / d['ref']:>7.1f}x"
            f"{d['read_once'] / d['ref']:>8.0f}x  |{d['ours_fwd']:>10.1f}{d['ref_fwd']:>12.1f}{d['ours_fwd'] / d['ref_fwd']:>7.1f}x"
        )
    lines += [
        "  ours = argmax of the logits our model emits (channels_last) + ColorTable lookup + kornia lab_to_rgb;",
        "  thesis = np.argmax of NCHW logits + np.vectorize lookup + skimage lab2rgb per image. +fwd columns start",
        "  from L: ours = module.net.colorize (U-Net body, chunked head argmax, no logits), thesis = the core model's",
        "  forward + the thesis decode. ceiling: the ratio of a decoder that only read the scores once (amax).",
        "",
        "bin table build, images/s (Lab conversion + per-bin counts, means and modes)",
        f"{'size':<9}{'images':>7}{'ours':>12}{'thesis':>10}{'ratio':>9}",
    ]
    for r in results:
        b = r.build
        lines.append(f"{f'{r.size}x{r.size}':<9}{b['images']:>7}{b['ours']:>12.1f}{b['ref']:>10.1f}{b['ours'] / b['ref']:>8.1f}x")
    lines += ["  ours = ColorHistogram + ColorTable.fill; thesis = rgb2lab + np.vectorize per image, per-bin Python loops.", ""]
    lines.append("checks (ours vs thesis reference on the same images)")
    for r in results:
        lines += [f"  {r.size}x{r.size} {check}" for check in r.checks]
    lines += ["", "targets"]
    for r in results:
        t, d, b, at = r.train, r.decode, r.build, f"{r.size}x{r.size}"
        lines += [
            f"  {at} full pipeline / model only (a/b) >= {TARGET_PIPELINE}: {t['a'] / t['b']:.2f}, {verdict(t['a'] / t['b'], TARGET_PIPELINE)}",
            f"  {at} end-to-end vs the core fp32 default (a/d) >= {TARGET_END_TO_END}x: {t['a'] / t['d']:.2f}x, "
            f"{verdict(t['a'] / t['d'], TARGET_END_TO_END)}"
            + (f"; Trainer.fit {r.fit['ours'] / r.fit['core']:.2f}x, {verdict(r.fit['ours'] / r.fit['core'], TARGET_END_TO_END)}"
               if r.fit else ""),
            f"  {at} decode vs thesis >= {TARGET_DECODE:.0f}x: {d['ours'] / d['ref']:.1f}x "
            f"(from L: {d['ours_fwd'] / d['ref_fwd']:.1f}x; reading the scores once: {d['read_once'] / d['ref']:.0f}x), "
            f"{verdict(d['ours'] / d['ref'], TARGET_DECODE)}",
            f"  {at} table build vs thesis >= {TARGET_BUILD:.0f}x: {b['ours'] / b['ref']:.1f}x, {verdict(b['ours'] / b['ref'], TARGET_BUILD)}",
        ]
        share = r.breakdown["data"]
        on_gpu = args.device.startswith("cuda")
        lines.append(
            f"  {at} data side share of a step <= {TARGET_DATA_SHARE:.0%} (the GPU target): {share:.1%}"
            + (f", {'met' if share <= TARGET_DATA_SHARE else 'NOT met'}" if on_gpu else ", not a GPU: for information")
        )
        if "f" in t:
            lines.append(f"  {at} torch.compile speed-up (f/a): {t['f'] / t['a']:.2f}x after {r.compile_s:.0f} s of compilation")
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (batch 4, 2 steps, few images, no compile)")
    parser.add_argument("--steps", type=int, help="timed steps for (a), (b), (e), (f); default per size")
    parser.add_argument("--ref-steps", type=int, help="timed steps for (c) and (d), the slow ones; default per size")
    parser.add_argument("--warmup", type=int, help="untimed steps before each timing; default per size (--quick 1)")
    parser.add_argument("--batch-size", type=int, help="images per step (default 32, --quick 4)")
    parser.add_argument("--sizes", type=int, nargs="+", choices=sorted(CONFIGS), default=sorted(CONFIGS), help="image sizes")
    parser.add_argument(
        "--compile-sizes", type=int, nargs="*", choices=sorted(CONFIGS),
        help="sizes at which to time (f), torch.compile (default 32; --quick none); give none to skip",
    )  # fmt: skip
    parser.add_argument(
        "--fit-sizes", type=int, nargs="*", choices=sorted(CONFIGS),
        help="sizes at which to time a real Trainer.fit, defaults vs core default (default 32); give none to skip",
    )  # fmt: skip
    parser.add_argument(
        "--precision", choices=["auto", "32-true", "bf16-mixed"], default="auto",
        help="precision of (a), (b), (f); auto: bf16-mixed where the device computes bf16 natively (as `lit-colorize fit`)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for the loading pipelines (default 0)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="default: cuda if available")
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or (4 if args.quick else 32)
    if args.compile_sizes is None:
        args.compile_sizes = [] if args.quick else [32]
    if args.fit_sizes is None:
        args.fit_sizes = [32]
    for name in ("batch_size", "steps", "ref_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup is not None and args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    if args.precision == "auto":
        args.precision = default_precision(torch.device(args.device).type)
        args.precision_reason = "auto: " + ("native bf16" if args.precision == "bf16-mixed" else "no native bf16 on this device")
    else:
        args.precision_reason = "as asked"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    # Untrained or barely trained models predict out-of-gamut colors; skimage warns per image.
    warnings.filterwarnings("ignore", message=".*negative Z values.*")
    warnings.filterwarnings("ignore", message=".*Color data out of range.*")

    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    machine = machine_line(device)  # before the run loads the machine itself
    results = []
    for size in args.sizes:
        config = quick(CONFIGS[size], args.batch_size) if args.quick else CONFIGS[size]
        results.append(run_size(config, args, device, log))
    lines = report(results, args, machine)
    lines.append(f"total run time {time.perf_counter() - started:.0f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
