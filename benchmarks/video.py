"""Video colorization, per frame vs stabilised, on the real clips of ``../shared/data/video``.

Each clip is taken to gray and colorized by the shipped model (docs/MODEL_CARD.md) twice: frame
by frame, and with the temporal stabiliser (lit_colorize/video/stabilize.py). The original color
clip is the third row. Columns:

- temporal consistency (lit_colorize/video/consistency.py), all on one geometry per frame pair,
  estimated from the input (gray) frames at full resolution with DIS "medium": the warping error
  of Lai et al. 2018 (x1e-3), its ab part (ab units), and CDC (Liu et al. 2021); "ab w FB" is
  the ab part again on Farneback flow, an estimate the stabiliser never sees;
- against the original: AuC, AuC rebalanced, PSNR and colorfulness, each the mean over frames
  (the AuC over all pixels of the clip);
- frames/s of the whole pipeline (decode, colorize, stabilise, encode H.264) at the clip's size,
  and its peak RSS: each measured in a fresh process (``--worker``), per frame and stabilised
  interleaved, so a background load weighs on both.

The stabiliser's settings were chosen before this benchmark ran and were not tuned on these
clips. Last, peak RSS for a short input and a 10x longer one (the same clip looped by remuxing,
no re-encoding) says whether memory grows with a video's length.

    python benchmarks/video.py | tee docs/video/benchmark.txt     # ~15 min on 2 CPU cores
    python benchmarks/video.py --max-frames 12 --clips carphone_pristine.mp4   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import REPO_ROOT, SHARED_DATA, machine_line

VIDEO_DIR = SHARED_DATA / "video"
ROWS = ("per-frame", "stabilised", "original")
METRIC_FLOW_PRESET = "medium"  # the stabiliser estimates its flow with "fast" at 240 px: a different estimate
STRIP_CLIP, STRIP_FIRST, STRIP_FRAMES = "flipping_a_pancake.mkv", 120, 5  # fixed before looking at results
LOOPS = 10


def farneback(gray_a: np.ndarray, gray_b: np.ndarray) -> np.ndarray:
    """A second, unrelated flow estimate for the cross-check column (OpenCV's Farnebäck with its
    documented example parameters): the stabiliser follows DIS flow, so a metric on DIS flow
    alone could favour it."""
    import cv2

    return cv2.calcOpticalFlowFarneback(gray_a, gray_b, None, 0.5, 5, 15, 3, 5, 1.2, 0).astype(np.float32)


# --- one run in a fresh process: throughput and peak memory -------------------------------
def worker(source: Path, mode: str, output: Path, max_frames: int | None) -> None:
    """Colorizes ``source`` into ``output`` and prints {"frames", "seconds"} as JSON."""
    from lit_colorize import Colorizer
    from lit_colorize.video.colorize import colorize_video
    from lit_colorize.video.io import VideoReader

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    net = Colorizer.pretrained().module.net
    if max_frames is not None:  # a smoke run: the first frames, through the same pipeline
        source = _first_frames(source, max_frames, output.parent)
    started = time.perf_counter()
    report = colorize_video(net, source, [output], [0.8], temporal_consistency=mode == "stabilised", progress=False)
    seconds = time.perf_counter() - started
    peak = peak_rss_of_this_process()
    with VideoReader(output) as reader:
        written = sum(1 for _ in reader)
    print(json.dumps({"frames": report.frames, "written": written, "seconds": seconds, "peak_rss_mib": peak}))


def peak_rss_of_this_process() -> float:
    """VmHWM, this process's peak RSS in MiB since its exec. Not ``wait4``'s ``ru_maxrss``,
    which Linux carries over from the parent at fork (a big parent would hide the child's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status (not Linux?)")


def _first_frames(source: Path, count: int, folder: Path) -> Path:
    """The first ``count`` frames' packets of ``source`` remuxed into a new file (no re-encoding)."""
    return _remux(source, folder / f"first{count}_{source.stem}.mkv", loops=1, max_packets=count)


def _remux(source: Path, target: Path, loops: int, max_packets: int | None = None) -> Path:
    """``source``'s video packets, ``loops`` times in a row with shifted timestamps, into ``target``."""
    import av

    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        in_stream = src.streams.video[0]
        out_stream = dst.add_stream_from_template(in_stream)
        packets = [p for p in src.demux(in_stream) if p.size > 0]
        if max_packets is not None:
            packets = packets[:max_packets]
        first = min(p.dts for p in packets if p.dts is not None)
        span = max(p.pts for p in packets) - first + (packets[-1].duration or 1)
        for loop in range(loops):
            for packet in packets:
                shift = loop * span - first
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = out_stream
                dst.mux(packet)
                packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
    return target


def peak_rss_mib(source: Path, mode: str, folder: Path, max_frames: int | None) -> tuple[dict[str, float], float]:
    """A fresh process colorizes ``source``: its frames/s (timed inside, the model loaded before)
    and its peak RSS in MiB (measured inside, :func:`peak_rss_of_this_process`)."""
    output = folder / f"{source.stem}_{mode}.mp4"
    command = [sys.executable, "-m", "benchmarks.video", "--worker", str(source), mode, str(output)]
    if max_frames is not None:
        command += ["--max-frames", str(max_frames)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        status = subprocess.run(command, cwd=REPO_ROOT, stdout=out, stderr=err, text=True).returncode
        out.seek(0), err.seek(0)
        if status != 0:
            raise RuntimeError(f"worker for {source.name} ({mode}) failed:\n{err.read()[-3000:]}")
        result = json.loads(out.read().strip().splitlines()[-1])
    output.unlink(missing_ok=True)
    run = {"fps": result["frames"] / result["seconds"], "frames": result["frames"], "written": result["written"]}
    return run, result["peak_rss_mib"]


# --- quality and consistency, in memory -----------------------------------------------------
def clip_metrics(source: Path, net, max_frames: int | None, strip: list | None) -> dict[str, dict[str, float]]:
    """Rows of metrics for one clip: the three rows decoded and colorized side by side, a frame at a time."""
    from lit_colorize.evaluation import RowScores, Truth
    from lit_colorize.metrics import colorfulness
    from lit_colorize.color import to_float_rgb
    from lit_colorize.video.colorize import FrameColorizer
    from lit_colorize.video.consistency import VideoConsistency
    from lit_colorize.video.flow import FlowEstimator, pair_geometry, to_gray_u8
    from lit_colorize.video.io import VideoReader

    def frames() -> object:
        with VideoReader(source) as reader:
            for index, decoded in enumerate(reader):
                if max_frames is not None and index >= max_frames:
                    return
                yield decoded.rgb

    per_frame = FrameColorizer(net, [0.8], temporal_consistency=False)
    stabilised = FrameColorizer(net, [0.8], temporal_consistency=True)
    estimator = FlowEstimator(METRIC_FLOW_PRESET)
    prior = net.color_table.counts if net.is_classifier else None
    consistency = {row: VideoConsistency() for row in ROWS}
    cross_check = {row: VideoConsistency() for row in ROWS}  # the same on Farnebäck flow
    scores = {row: RowScores(net.grid_size, prior, torch.device("cpu")) for row in ROWS[:2]}
    truth_cf: list[float] = []
    previous_gray = None
    for index, (truth, (per,), (stab,)) in enumerate(zip(frames(), per_frame(frames()), stabilised(frames()))):
        gray = to_gray_u8(truth)
        geometry = None if previous_gray is None else pair_geometry(previous_gray, gray, estimator)
        other = None if previous_gray is None else pair_geometry(previous_gray, gray, farneback)
        previous_gray = gray
        truth_tensor = torch.from_numpy(truth).permute(2, 0, 1)
        reference = Truth.of(truth_tensor)
        cf = float(colorfulness(to_float_rgb(truth_tensor)[None])[0])
        truth_cf.append(cf)
        for row, image in zip(ROWS, (per, stab, truth)):
            consistency[row].update(image, geometry)
            cross_check[row].update(image, other)
            if row in scores:
                scores[row].update(torch.from_numpy(image).permute(2, 0, 1), reference, cf)
        if strip is not None and STRIP_FIRST <= index < STRIP_FIRST + STRIP_FRAMES:
            strip.append((per, stab, truth))
    rows = {}
    for row in ROWS:
        rows[row] = dict(consistency[row].summary())
        rows[row]["ab_warp_farneback"] = cross_check[row].summary()["ab_warp_error"]
        if row in scores:
            rows[row].update(scores[row].summary())
        else:
            rows[row].update(cf=float(np.mean(truth_cf)))
    rows["stabilised"]["cuts"] = len(stabilised.cuts)
    return rows


def save_strip(strip: list, path: Path) -> None:
    """Consecutive frames left to right. Rows: per-frame, its change of colour from the frame
    before (|delta ab|, 8 ab units = white), stabilised, its change, original: flicker is what
    changes in the second row and not in the fourth (camera motion shows in both)."""
    from PIL import Image, ImageDraw

    from lit_colorize.video.consistency import ab_channels

    def change(frames: list[np.ndarray], index: int) -> np.ndarray:
        if index == 0:
            return np.zeros_like(frames[0])
        delta = np.linalg.norm(ab_channels(frames[index]) - ab_channels(frames[index - 1]), axis=-1)
        return np.repeat((np.clip(delta / 8.0, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=-1)

    scale = 2 if strip[0][0].shape[1] > 400 else 1
    per, stab, truth = ([frames[which] for frames in strip] for which in range(3))
    rows = [per, [change(per, i) for i in range(len(per))], stab, [change(stab, i) for i in range(len(stab))], truth]
    labels = ["per-frame", "per-frame |delta ab|", "stabilised", "stabilised |delta ab|", "original"]
    grid = np.concatenate([np.concatenate([frame[::scale, ::scale] for frame in row], axis=1) for row in rows], axis=0)
    image = Image.fromarray(grid)
    draw = ImageDraw.Draw(image)
    height = grid.shape[0] // len(rows)
    for which, label in enumerate(labels):
        draw.text((4, which * height + 4), label, fill=(255, 64, 64))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


# --- the report -----------------------------------------------------------------------------
HEADER = (
    f"{'clip':<24} {'row':<11} {'warp e-3':>8} {'ab warp':>7} {'ab w FB':>7} {'CDC':>7} {'AuC':>6} {'AuC rb':>6} {'PSNR':>6} "
    f"{'CF':>6} {'fps':>6} {'RSS MiB':>7}"
)


def fmt(value: float, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def line(clip: str, row: str, values: dict[str, float]) -> str:
    return (
        f"{clip:<24} {row:<11} {fmt(values.get('warp_error_e3'), '8.3f')} {fmt(values.get('ab_warp_error'), '7.3f')} "
        f"{fmt(values.get('ab_warp_farneback'), '7.3f')} "
        f"{fmt(values.get('cdc'), '7.5f')} {fmt(values.get('auc'), '6.4f')} {fmt(values.get('auc_rebalanced'), '6.4f')} "
        f"{fmt(values.get('psnr_mean'), '6.2f')} {fmt(values.get('cf'), '6.2f')} {fmt(values.get('fps'), '6.2f')} "
        f"{fmt(values.get('rss'), '7.0f')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", default=None, help="file names in ../shared/data/video (default: all)")
    parser.add_argument("--max-frames", type=int, default=None, help="only the first N frames of each clip (smoke runs)")
    parser.add_argument("--strip", type=Path, default=None, help="save the strip of frames here (PNG)")
    parser.add_argument("--worker", nargs=3, metavar=("SOURCE", "MODE", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        source, mode, output = args.worker
        worker(Path(source), mode, Path(output), args.max_frames)
        return

    from lit_colorize import Colorizer
    from lit_colorize.video.io import probe_video
    from lit_colorize.video.stabilize import StabilizerSettings

    if not VIDEO_DIR.is_dir():
        sys.exit(f"no clips: {VIDEO_DIR} not found (the read-only ../shared/data beside the checkout)")
    names = args.clips or sorted(p.name for p in VIDEO_DIR.iterdir() if p.suffix in {".mp4", ".mkv", ".avi"})
    print(machine_line())
    print("model: the shipped default (lit_colorize/weights), mode_mean T=0.8, working size = its training size")
    print(f"metric flow: DIS {METRIC_FLOW_PRESET} on the input's L* at full resolution; stabiliser: {StabilizerSettings()}")
    net = Colorizer.pretrained().module.net
    results: dict[str, dict[str, dict[str, float]]] = {}
    strip: list = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name in names:
            source = VIDEO_DIR / name
            info = probe_video(source)
            started = time.perf_counter()
            rows = clip_metrics(source, net, args.max_frames, strip if name == STRIP_CLIP else None)
            for mode in ("per-frame", "stabilised"):
                run, rss = peak_rss_mib(source, mode, folder, args.max_frames)
                if run["written"] != run["frames"]:
                    raise RuntimeError(f"{name} {mode}: {run['frames']} frames colorized, {run['written']} in the file")
                rows[mode].update(fps=run["fps"], rss=rss, frames=run["frames"])
            results[name] = rows
            print(f"{name}: {info.width}x{info.height}, {rows['per-frame']['frames']:.0f} frames, "
                  f"{rows['stabilised']['cuts']} cuts found; measured in {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip

        print()
        print(HEADER)
        for name, rows in results.items():
            for row in ROWS:
                print(line(name, row, rows[row]))
        keys = ("warp_error_e3", "ab_warp_error", "ab_warp_farneback", "cdc", "auc", "auc_rebalanced", "psnr_mean", "cf", "fps", "rss")
        mean = {row: {key: float(np.mean([results[n][row][key] for n in results])) for key in keys
                      if all(key in results[n][row] for n in results)} for row in ROWS}  # fmt: skip
        for row in ROWS:
            print(line("mean over clips", row, mean[row]))

        loop_source = VIDEO_DIR / "carphone_pristine.mp4"
        short = _remux(loop_source, folder / "short.mkv", loops=1, max_packets=args.max_frames)
        long = _remux(loop_source, folder / "long.mkv", loops=LOOPS, max_packets=args.max_frames)
        short_run, short_rss = peak_rss_mib(short, "stabilised", folder, None)
        long_run, long_rss = peak_rss_mib(long, "stabilised", folder, None)

    per, stab = mean["per-frame"], mean["stabilised"]
    fb_ratio = float(np.mean([results[n]["stabilised"]["ab_warp_farneback"] / results[n]["per-frame"]["ab_warp_farneback"] for n in results]))
    ab_ratio = float(np.mean([results[n]["stabilised"]["ab_warp_error"] / results[n]["per-frame"]["ab_warp_error"] for n in results]))
    fps_ratio = float(np.mean([results[n]["stabilised"]["fps"] / results[n]["per-frame"]["fps"] for n in results]))
    print()
    print(f"peak RSS, stabilised, {loop_source.name} looped: {short_run['frames']} frames {short_rss:.0f} MiB, "
          f"{long_run['frames']} frames ({LOOPS}x) {long_rss:.0f} MiB, ratio {long_rss / short_rss:.3f}")  # fmt: skip
    verdicts = [
        (f"stabilised ab warping error / per-frame, mean of per-clip ratios {ab_ratio:.3f} <= 0.5", ab_ratio <= 0.5),
        (f"RGB warping error {stab['warp_error_e3']:.3f} <= per-frame {per['warp_error_e3']:.3f} (mean)",
         stab["warp_error_e3"] <= per["warp_error_e3"]),
        (f"CDC {stab['cdc']:.5f} <= per-frame {per['cdc']:.5f} (mean)", stab["cdc"] <= per["cdc"]),
        (f"AuC {stab['auc']:.4f} within 0.005 of per-frame {per['auc']:.4f}", abs(stab["auc"] - per["auc"]) <= 0.005),
        (f"PSNR {stab['psnr_mean']:.2f} within 0.3 dB of per-frame {per['psnr_mean']:.2f}",
         abs(stab["psnr_mean"] - per["psnr_mean"]) <= 0.3),
        (f"throughput stabilised / per-frame, mean of per-clip ratios {fps_ratio:.3f} >= 0.6", fps_ratio >= 0.6),
        (f"peak RSS {LOOPS}x longer / short {long_rss / short_rss:.3f} <= 1.10", long_rss / short_rss <= 1.10),
    ]  # fmt: skip
    for text, ok in verdicts:
        print(f"{'MET   ' if ok else 'MISSED'} {text}")
    print(f"cross-check on Farneback flow (ab w FB): stabilised / per-frame ab warping error, mean of per-clip ratios {fb_ratio:.3f}")
    if args.strip and strip:
        save_strip(strip, args.strip)
        print(f"strip of frames {STRIP_FIRST}-{STRIP_FIRST + len(strip) - 1} of {STRIP_CLIP}: {args.strip}")


if __name__ == "__main__":
    main()
