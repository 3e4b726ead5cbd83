"""Video decode throughput on the CPU: PyAV against OpenCV and torchcodec, on the shared clips.

Why: lit_colorize.video.io decodes with PyAV. The alternatives are OpenCV's ``cv2.VideoCapture``
(its wheel bundles FFmpeg too, but gives no pts, no audio and no per-packet error handling) and
torchcodec (decodes straight to tensors, but its pip wheel needs FFmpeg's shared libraries from
the system). This prints, side by side in one run, frames/s of each on every clip of
``../shared/data/video``, each to an RGB (or, for OpenCV, BGR) uint8 array per frame, timed in
interleaved rounds after a warm-up (see benchmarks/common.py):

* (a) PyAV, threaded decoding (``thread_type = "AUTO"``), ``frame.to_ndarray(format="rgb24")``;
* (b) lit_colorize.video.io.VideoReader: (a) with one reused swscale context (``VideoReformatter``)
  instead of ``to_ndarray``'s new one per frame, plus the pts rules and bad-packet handling;
* (c) OpenCV ``cv2.VideoCapture(path, cv2.CAP_FFMPEG)``, ``read()`` to BGR (its native output);
* (d) torchcodec ``VideoDecoder`` on the CPU, all frames, when it can be imported; else one line says why.

    python benchmarks/video_decode.py | tee docs/video_decode_cpu.txt     # about a minute
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, like `python -m benchmarks.video_decode`

import av  # noqa: E402
import cv2  # noqa: E402

from benchmarks.common import SHARED_DATA, interleaved_seconds, machine_line  # noqa: E402
from lit_colorize.video.io import VideoReader, probe_video  # noqa: E402


def pyav_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for frame in container.decode(stream) if frame.to_ndarray(format="rgb24") is not None)


def reader_frames(path: Path) -> int:
    with VideoReader(path) as reader:
        return sum(1 for _ in reader)


def opencv_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    count = 0
    try:
        while True:
            ok, _ = capture.read()
            if not ok:
                return count
            count += 1
    finally:
        capture.release()


def torchcodec_decoder() -> tuple[Callable[[Path], int] | None, str]:
    """torchcodec's frame counter, or None and the one-line reason it cannot run here."""
    try:
        import torchcodec  # noqa: PLC0415
        from torchcodec.decoders import VideoDecoder  # noqa: PLC0415
    except Exception as error:  # noqa: BLE001 (ImportError, or its RuntimeError when FFmpeg's libraries are missing)
        reason = " ".join(str(error).split())
        return None, f"torchcodec not measured: {type(error).__name__}: {reason[:300]}"

    def frames(path: Path) -> int:
        decoder = VideoDecoder(str(path), device="cpu")
        return sum(1 for _ in decoder)

    return frames, f"torchcodec {torchcodec.__version__}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=SHARED_DATA / "video", help="the clips to decode")
    parser.add_argument("--rounds", type=int, default=2, help="timed decodes of each clip by each decoder")
    args = parser.parse_args(argv)
    clips = sorted(path for path in args.folder.iterdir() if path.suffix in (".mp4", ".mkv", ".avi"))
    if not clips:
        raise SystemExit(f"no clips in {args.folder}")
    torchcodec, torchcodec_line = torchcodec_decoder()
    decoders: dict[str, Callable[[Path], int]] = {
        "(a) PyAV": pyav_frames, "(b) VideoReader": reader_frames, "(c) OpenCV": opencv_frames,
    }  # fmt: skip
    if torchcodec is not None:
        decoders["(d) torchcodec"] = torchcodec

    print("lit-colorize video decode")
    print(machine_line())
    print(f"PyAV {av.__version__} (FFmpeg libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}), "
          f"OpenCV {cv2.__version__}, {torchcodec_line}")  # fmt: skip
    print(f"timed: 1 warm-up + {args.rounds} decodes of each whole clip per decoder, interleaved")
    print()
    names = list(decoders)
    header = f"{'clip':24} {'codec':8} {'size':>9} {'frames':>6}" + "".join(f"{name:>17}" for name in names)
    print("frames/s")
    print(header + f"{'b/a':>7}{'c/a':>7}" + (f"{'d/a':>7}" if torchcodec else ""))
    totals = dict.fromkeys(names, 0.0)
    total_frames = 0
    for clip in clips:
        info = probe_video(clip)
        counts = {name: decode(clip) for name, decode in decoders.items()}
        frames = counts["(a) PyAV"]
        seconds = interleaved_seconds({name: (lambda d=decode, c=clip: d(c), args.rounds) for name, decode in decoders.items()},
                                      rounds=args.rounds, warmup=1)  # fmt: skip
        rates = {name: counts[name] * args.rounds / seconds[name] for name in names}
        for name in names:
            totals[name] += seconds[name] / args.rounds
        total_frames += frames
        mismatch = "" if len(set(counts.values())) == 1 else "  frame counts differ: " + ", ".join(f"{n} {c}" for n, c in counts.items())
        ratios = "".join(f"{rates[name] / rates['(a) PyAV']:7.2f}" for name in names[1:])
        print(f"{clip.name:24} {info.codec:8} {f'{info.width}x{info.height}':>9} {frames:6d}"
              + "".join(f"{rates[name]:17.1f}" for name in names) + ratios + mismatch)  # fmt: skip
    overall = {name: total_frames / totals[name] for name in names}
    print(f"{'all clips':24} {'':8} {'':>9} {total_frames:6d}" + "".join(f"{overall[name]:17.1f}" for name in names)
          + "".join(f"{overall[name] / overall['(a) PyAV']:7.2f}" for name in names[1:]))  # fmt: skip
    print()
    print("  (a) PyAV threaded, to_ndarray rgb24 (a new swscale context per frame); (b) the project's reader:")
    print("  PyAV threaded with one reused VideoReformatter, pts rules, bad-packet handling; (c) cv2.VideoCapture")
    print("  with its bundled FFmpeg, BGR out, no pts and no audio; (d) torchcodec on the CPU. Ratios over (a).")


if __name__ == "__main__":
    main()
