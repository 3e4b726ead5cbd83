"""Writes colorized photos (and videos, streamed) as they are predicted, one file per
temperature, never over a file the user has unless asked to, and goes on past any photo or
video it cannot read or write."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image

from lit_colorize.atomic import TargetExists, atomic_write, remove_stale_partials
from lit_colorize.batches import is_photo_batch
from lit_colorize.errors import ConfigError, UserError
from lit_colorize.module import ColorizationModule
from lit_colorize.outputs import DEFAULT_SUFFIX, EXTENSIONS, VIDEO_EXTENSIONS, format_temperature
from lit_colorize.fullres import DEFAULT_UPSAMPLING
from lit_colorize.options import DecodingChoice
from lit_colorize.prediction import ColorizedPhoto, PhotoItem, RenderSettings, is_out_of_memory, request_vector

ImageFormat = Literal["png", "jpeg"]
Upsampling = Literal["guided", "bilinear"]
VideoFormat = Literal["mp4", "mkv"]


class ColorizedPhotoWriter(BasePredictionWriter):
    """Saves each colorized photo under ``output_dir`` (mirroring the subfolders of a folder
    input) as ``<name><suffix>.png|.jpg``; ``suffix`` may use ``{temperature}``. Predicting
    a training DataModule (e.g. ToyShapes' validation set) writes ``<loader>-<index><suffix>``.

    The writer also states what predict renders (:class:`RenderSettings`, handed to the module
    at the start): ``temperatures`` (default None: the model's own recommended decoding, see
    ``ColorizationNet.decodings_for``), ``working_size`` (shorter side the network sees; None:
    the model's own) and ``upsampling`` (``guided`` by the photo's L, or ``bilinear``). Every item of ``predict_step``'s result is
    a :class:`ColorizedPhoto`, whatever the source.

    Videos among the inputs become ``<name><suffix>.mp4`` (``video_format``: mp4 or mkv):
    H.264 yuv420p at constant quality ``video_crf``, the source's size, frame times and audio,
    streamed frame by frame (:func:`lit_colorize.video.colorize.colorize_video`) and
    stabilised in time unless ``temporal_consistency`` is false. The same rules hold for them.

    What it guarantees:

    - An existing file, input or output, is never replaced unless ``overwrite``; an existing
      output is left as it is and counts as done (one line names it, unless ``skip_existing``
      asks for quiet), so a rerun after a killed run writes only what is missing. A photo
      whose outputs all exist is not colorized at all.
    - Writes are atomic: a hidden ``.<name>.<host>~<space>-<pid>-<random>.partial.png`` is
      published under the final name once complete, so no half image ever has a final name;
      without ``overwrite`` never over a file that another run published meanwhile (that
      photo or video fails with "exists", the other run's file is kept). A write that fails
      (no space left, permission denied) removes its temporary file; the temporary files of
      a killed run are removed by the next run into the same folder (see
      :mod:`lit_colorize.outputs`). Outputs get the umask's mode, like any new file.
    - A photo that cannot be read, colorized (out of memory) or written is reported by path
      as it happens, the run goes on, and the failures are summed up at the end, over all
      processes under DDP (each process writes its own share; Lightning's predict sampler
      never repeats a photo); ``total_failures`` sets the exit status: 0 when every output
      was written or existed already, 1 when any photo failed.
    """

    def __init__(
        self,
        output_dir: str | Path = "colorized",
        temperatures: Sequence[float] | None = None,
        working_size: int | None = None,
        upsampling: Upsampling = DEFAULT_UPSAMPLING,
        suffix: str = DEFAULT_SUFFIX,
        image_format: ImageFormat = "png",
        quality: int = 95,
        overwrite: bool = False,
        skip_existing: bool = False,
        temporal_consistency: bool = True,
        video_format: VideoFormat = "mp4",
        video_crf: int = 18,
    ) -> None:
        super().__init__(write_interval="batch")
        if image_format not in EXTENSIONS:
            raise ValueError(f"image_format must be 'png' or 'jpeg', got {image_format!r}")
        if not 1 <= quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {quality}")
        if video_format not in VIDEO_EXTENSIONS:
            raise ConfigError(f"writer.video_format must be 'mp4' or 'mkv', got {video_format!r}")
        if isinstance(video_crf, bool) or not isinstance(video_crf, int) or not 0 <= video_crf <= 51:
            raise ConfigError(f"writer.video_crf must be an integer in 0..51 (x264: 0 lossless, 18 visually lossless, 23 its default), got {video_crf!r}")
        try:  # finite, 0..10: NaN would give black
            self.render_settings = RenderSettings(temperatures, working_size, upsampling)
        except ConfigError as error:
            raise ConfigError(f"writer.{error}") from None
        if len(self.render_settings.temperatures or ()) > 1 and "{temperature}" not in suffix:
            raise ValueError(f"with several temperatures the suffix must contain '{{temperature}}', got {suffix!r}")
        if overwrite and skip_existing:
            raise ValueError("overwrite and skip_existing contradict each other; choose one")
        self.output_dir = Path(output_dir)
        self.suffix = suffix
        self.image_format = image_format
        self.quality = quality
        self.overwrite = overwrite
        self.skip_existing = skip_existing
        self.temporal_consistency = temporal_consistency
        self.video_format = video_format
        self.video_crf = video_crf
        self.written: list[Path] = []
        self.videos_written = 0
        self.skipped: list[Path] = []
        self.failures: list[str] = []
        self.total_failures = 0  # over all processes, known after predict
        self._claimed: dict[Path, str] = {}
        self.decodings: list[DecodingChoice] = []  # what is rendered, known once the model is (on_predict_start)

    def output_path(self, photo: ColorizedPhoto | PhotoItem, temperature: float) -> Path:
        item = photo.item if isinstance(photo, ColorizedPhoto) else photo
        name = Path(item.path).stem + self.suffix.format(temperature=format_temperature(temperature))
        extension = VIDEO_EXTENSIONS[self.video_format] if item.is_video else EXTENSIONS[self.image_format]
        return self.output_dir / item.relative_dir / f"{name}{extension}"

    def on_predict_start(self, trainer: L.Trainer, pl_module: ColorizationModule) -> None:
        pl_module.render_settings = self.render_settings
        self.decodings = pl_module.net.decodings_for(self.render_settings.temperatures)
        self.written, self.skipped, self.failures, self._claimed = [], [], [], {}
        self.videos_written = 0
        if trainer.is_global_zero:
            removed = remove_stale_partials(self.output_dir)
            if removed:
                print(f"ColorizedPhotoWriter: removed {len(removed)} temporary file(s) a killed run left in {self.output_dir}")

    def on_predict_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Photos whose every output exists are not colorized: without ``overwrite`` nothing
        would be written for them (they are skipped)."""
        if self.overwrite or not is_photo_batch(batch):
            return
        for item in batch:
            has_work = item.rgb is not None or (item.is_video and item.error is None)
            if has_work and all(self.output_path(item, d.temperature).exists() for d in self.decodings):
                item.rgb = item.alpha = None
                item.outputs_exist = True

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: list[ColorizedPhoto],
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        for photo in prediction:
            if photo.item.error is not None:
                self._fail(photo.item.path, photo.item.error)
            elif photo.item.outputs_exist:  # not colorized: each output is reported or skipped
                for decoding in self.decodings:
                    self._may_write(photo.item.path, self.output_path(photo, decoding.temperature))
            elif photo.item.is_video:
                self._write_video(trainer, pl_module, photo.item)
            else:
                for temperature, image in zip(photo.temperatures, photo.images):
                    self._write(photo, temperature, image)

    def _may_write(self, source: str, path: Path) -> bool:
        """False when ``path`` was written in this run for another photo (a failure), or exists
        and may not be replaced: then it is kept and counts as done, not as a failure (a rerun
        over finished outputs succeeds), and named here unless ``skip_existing`` asks for quiet."""
        if path in self._claimed:
            self._fail(source, f"its output {path} was already written in this run for {self._claimed[path]}")
            return False
        if not self.overwrite and path.exists():
            self.skipped.append(path)
            if not self.skip_existing:
                print(f"ColorizedPhotoWriter: {path} exists, skipped (pass --skip_existing to skip quietly or --overwrite to replace)", flush=True)
            return False
        return True

    def _write(self, photo: ColorizedPhoto, temperature: float, image: Any) -> None:
        path = self.output_path(photo, temperature)
        source = photo.item.path
        if not self._may_write(source, path):
            return
        self._claimed[path] = source
        pixels = image.permute(1, 2, 0).numpy()
        alpha = photo.item.alpha
        if alpha is not None and self.image_format == "png":
            pixels = np.concatenate([pixels, alpha.cpu().permute(1, 2, 0).numpy()], axis=2)
        elif alpha is not None:
            rank_zero_info(f"ColorizedPhotoWriter: {source} has transparency, which JPEG cannot keep; use PNG")
        try:
            self._save_atomically(Image.fromarray(np.ascontiguousarray(pixels)), path)
        except TargetExists:  # another run published it while this one encoded: theirs is kept
            self._fail(source, f"{path} exists (another run wrote it meanwhile); pass --overwrite to replace it, or --skip_existing to keep it")
            return
        except OSError as error:  # no space, permission denied, read-only disk, a file where a folder goes
            self._fail(source, f"cannot write {path}: {error.strerror or error}")
            return
        except MemoryError:  # encoding a huge photo
            self._fail(source, f"cannot write {path}: out of memory while encoding it")
            return
        self.written.append(path)

    def _write_video(self, trainer: L.Trainer, pl_module: L.LightningModule, item: PhotoItem) -> None:
        """Streams the video ``item`` through the model into one file per temperature whose
        output may be written; a video that cannot be read, colorized or written fails alone."""
        source = item.path
        jobs = [(d, self.output_path(item, d.temperature)) for d in self.decodings]
        jobs = [(t, path) for t, path in jobs if self._may_write(source, path)]
        if not jobs:
            return
        try:
            from lit_colorize.video.colorize import colorize_video
            from lit_colorize.video.io import VideoReadError, VideoWriteError
        except ImportError as error:
            self._fail(source, f"cannot colorize videos: {error}")
            return
        for _, path in jobs:
            self._claimed[path] = source
        try:
            for _, path in jobs:
                path.parent.mkdir(parents=True, exist_ok=True)
            report = colorize_video(
                pl_module.net,
                source,
                [path for _, path in jobs],
                [t for t, _ in jobs],
                working_size=self.render_settings.working_size,
                upsampling=self.render_settings.upsampling,
                temporal_consistency=self.temporal_consistency,
                crf=self.video_crf,
                progress=True,
                line_progress=True,  # beside Lightning's own bar, plain lines
                overwrite=self.overwrite,
                global_hint=request_vector(pl_module.net, item.global_hint),
                keyframe_hints=item.keyframe_hints,
            )
        except (VideoReadError, VideoWriteError, UserError) as error:  # UserError: its hints or global hint
            self._fail(source, str(error).removeprefix(f"{source}: "))
            return
        except OSError as error:  # a folder that cannot be created, no space left
            self._fail(source, f"cannot write its video: {error.strerror or error}")
            return
        except Exception as error:  # noqa: BLE001 - only memory errors are the video's; others re-raised
            if not is_out_of_memory(error):
                raise
            self._fail(source, "out of memory colorizing it; use a smaller --writer.working_size, or --trainer.accelerator cpu")
            return
        if report.bad_packets:
            print(f"ColorizedPhotoWriter: {source}: skipped {report.bad_packets} undecodable packet(s); the other frames were written", flush=True)
        for note in report.notes():
            print(f"ColorizedPhotoWriter: {source}: {note}", flush=True)
        self.written.extend(path for _, path in jobs)
        self.videos_written += len(jobs)

    def _save_atomically(self, image: Image.Image, path: Path) -> None:
        """Encode into a temporary file beside ``path``, then rename it over ``path``; on any
        failure the temporary file is removed and nothing has the final name."""
        options = {"quality": self.quality} if self.image_format == "jpeg" else {"compress_level": 6}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, replace=self.overwrite) as stream:
            image.save(stream, format=self.image_format.upper(), **options)

    def _fail(self, source: str, reason: str) -> None:
        message = f"{source}: {reason}"
        self.failures.append(message)
        print(f"ColorizedPhotoWriter: FAILED {message}", flush=True)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Sum up over all processes (each wrote its own share of the photos)."""
        counts = torch.tensor(
            [len(self.written), len(self.skipped), len(self.failures), self.videos_written],
            dtype=torch.float64,
            device=pl_module.device,
        )
        if trainer.world_size > 1:
            counts = trainer.strategy.reduce(counts, reduce_op="sum")
        written, skipped, self.total_failures, videos = (int(c) for c in counts.tolist())
        ranks = f" by {trainer.world_size} processes" if trainer.world_size > 1 else ""
        images = written - videos
        what = f"{videos} videos" if videos and not images else f"{images} images" + (f" and {videos} videos" if videos else "")
        summary = f"ColorizedPhotoWriter: wrote {what} to {self.output_dir}{ranks}"
        if skipped:
            summary += f"; kept {skipped} that existed" + ("" if self.skip_existing else " (--overwrite replaces them)")
        if self.total_failures:
            summary += f"; {self.total_failures} failed"
            if self.failures:
                summary += " (this process's:)\n  " + "\n  ".join(self.failures)
        if trainer.is_global_zero or self.failures:
            print(summary, flush=True)
