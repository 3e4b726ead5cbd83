"""Colorizer: colorize photos from Python with a trained checkpoint, no Trainer needed.

    from lit_colorize import Colorizer
    colorizer = Colorizer.pretrained()   # the shipped model; or Colorizer.from_checkpoint("best.ckpt", device="cpu")
    color = colorizer.colorize("old_photo.jpg")   # a PIL image, full size, the model's own decoding
    colorizer.colorize_video("old_film.mp4", "old_film_colorized.mp4")  # sound kept, steady colors
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from lit_colorize.checkpoint_io import read_checkpoint
from lit_colorize.errors import CheckpointError, UserError, check_temperature, check_working_size
from lit_colorize.imageio import pillow_pixels, read_image
from lit_colorize.bins import MissingColorTableError, require_color_table
from lit_colorize.color import lab_to_rgb
from lit_colorize.fullres import DEFAULT_UPSAMPLING, check_upsampling, full_resolution_l, network_input, working_size
from lit_colorize.global_hints import GlobalHintError, global_hint_vector, palette_distribution, reference_distribution
from lit_colorize.module import ColorizationModule
from lit_colorize.network import upgrade_state_dict
from lit_colorize.pretrained import PRETRAINED_HINTS_NAME, pretrained_checkpoint
from lit_colorize.user_hints import HintError, parse_hints, working_hints, working_position

ImageLike = Union[str, Path, Image.Image, np.ndarray, Tensor]
# A float image this far outside [0, 1] is on another scale (0..255, say), not resampling overshoot.
FLOAT_RANGE_TOLERANCE = 0.5
# The class_path LightningCLI records in a checkpoint's hyperparameters for this module.
_OWN_CLASS_PATHS = ("lit_colorize.ColorizationModule", "lit_colorize.module.ColorizationModule")


def check_hyperparameters(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The checkpoint's ColorizationModule arguments; CheckpointError for any this version does
    not know (a checkpoint of another model, or of a newer lit-colorize)."""
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict):
        raise CheckpointError(f"{path} holds no hyper_parameters, so the model it belongs to is unknown")
    class_path = hparams.get("_class_path")
    if class_path is not None and class_path not in _OWN_CLASS_PATHS:
        raise CheckpointError(f"{path} is a checkpoint of {class_path}, not of lit_colorize.ColorizationModule")
    known = set(inspect.signature(ColorizationModule.__init__).parameters) - {"self"}
    arguments = {k: v for k, v in hparams.items() if not k.startswith("_")}
    unknown = sorted(set(arguments) - known)
    if unknown:
        raise CheckpointError(
            f"{path} has hyperparameters this lit-colorize does not know: {', '.join(unknown)} (a checkpoint of "
            "another model, or of a newer lit-colorize?)"
        )
    return arguments


# ckpt_path values that Lightning (or lit_colorize.resume) resolves itself, and remote files.
_RESOLVED_BY_LIGHTNING = ("last", "best", "hpc")


def check_ckpt_path(subcommand: str, ckpt_path: str | Path | None, model_class_path: str | None) -> None:
    """``--ckpt_path`` of ``fit|validate|test|predict``, checked before Lightning reads it:
    predict needs one (an untrained model colorizes orange; the CLI gives it the shipped model
    when none is named); a local file must be a readable, safe Lightning checkpoint, and when the
    model is ColorizationModule, one of its checkpoints. Raises a :class:`CheckpointError` naming the file."""
    if subcommand == "predict" and not ckpt_path:
        raise CheckpointError(
            "predict needs a trained model: pass --ckpt_path path/to/best.ckpt (lit-colorize fit writes them "
            "under logs/<project>/<run id>/checkpoints/), or leave it out for the shipped model"
        )
    if not ckpt_path or str(ckpt_path) in _RESOLVED_BY_LIGHTNING or "://" in str(ckpt_path):
        return
    checkpoint = read_checkpoint(ckpt_path, mmap=True)
    if model_class_path in _OWN_CLASS_PATHS:
        check_hyperparameters(checkpoint, ckpt_path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A lit-colorize checkpoint: :func:`read_checkpoint` plus its hyperparameters checked."""
    checkpoint = read_checkpoint(path, map_location)
    check_hyperparameters(checkpoint, path)
    return checkpoint


def module_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> ColorizationModule:
    """Rebuild the ColorizationModule of a checkpoint: hyperparameters, weights and bin table."""
    checkpoint = read_checkpoint(path, map_location)
    module = ColorizationModule(**check_hyperparameters(checkpoint, path))
    state = checkpoint["state_dict"]
    upgrade_state_dict(state, module.hparams.grid_size)
    if module.is_classifier:
        require_color_table(state.get("net.color_table.built"), f"checkpoint {path}")
    try:
        module.load_state_dict(state)
    except RuntimeError as error:  # missing or misshapen weights: the file, not the code
        first = str(error).splitlines()[0]
        raise CheckpointError(f"{path} does not fit the model its hyperparameters describe: {first}") from error
    return module.eval()


class Colorizer:
    """A trained colorization model, ready to colorize photos of any size.

    ``colorize`` accepts one image or a list: a path, a PIL image, a numpy array (H, W),
    (H, W, 3) or (H, W, 4), or a tensor (H, W), (1|3|4, H, W); uint8, or float in [0, 1].
    Color inputs are taken to gray first; their L is kept, so the output has the input's
    size and detail. Alpha is kept. Each result has the kind of its input (a path gives a
    PIL image): numpy (H, W, 3|4) uint8, tensor (3|4, H, W) uint8, or a PIL image.
    """

    def __init__(
        self,
        module: ColorizationModule,
        device: str | torch.device = "cpu",
        working_size: int | None = None,
        upsampling: str = DEFAULT_UPSAMPLING,
    ) -> None:
        """``working_size``: the shorter side the network sees (None: the model's own, measured);
        ``upsampling``: ``guided`` (chroma edges follow the photo's L edges) or ``bilinear``."""
        working_size = check_working_size(working_size)  # the CLI's rule: a whole number, 1 to MAX_WORKING_SIZE
        self.upsampling = check_upsampling(upsampling)
        if module.is_classifier and not bool(module.color_table.built):
            raise MissingColorTableError(
                "this classification model has no bin color table yet (untrained?), so its bins cannot be turned "
                "into colors; train it with the ColorTableBuilder callback, or use Colorizer.from_checkpoint"
            )
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.working_size = working_size

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", working_size: int | None = None, upsampling: str = DEFAULT_UPSAMPLING
    ) -> Colorizer:
        check_working_size(working_size)  # before the file is read
        check_upsampling(upsampling)
        return cls(module_from_checkpoint(path, map_location="cpu"), device, working_size, upsampling)

    @classmethod
    def pretrained(
        cls, device: str | torch.device = "cpu", working_size: int | None = None, hints: bool = False, upsampling: str = DEFAULT_UPSAMPLING
    ) -> Colorizer:
        """The model shipped with the package (see ``docs/MODEL_CARD.md``): no training needed.
        ``hints=True``: its twin trained with color hints (``colorize(..., hints=[...])``)."""
        name = PRETRAINED_HINTS_NAME if hints else None
        return cls.from_checkpoint(pretrained_checkpoint(name), device, working_size, upsampling)

    @torch.no_grad()
    def colorize(
        self,
        image: ImageLike | Sequence[ImageLike],
        temperature: float | None = None,
        hints: Sequence[dict] | None = None,
        reference: ImageLike | None = None,
        palette: Sequence[Any] | None = None,
        weights: Sequence[float] | None = None,
        global_hint: Tensor | None = None,
    ) -> Any:
        """``temperature``: None, the model's own recommended decoding (its ``predict_decoding``;
        mode-mean T=0.8 for a model without one); else 0 (each bin's mode) to 10, 1 its mean,
        with the model's decoding; ValueError otherwise, NaN included.
        ``hints`` (a model trained with ``hints: true``): colors to impose, e.g.
        ``[{"x": 120, "y": 45, "color": "#2a6fdb"}, {"x": 300, "y": 210, "color": (40, 90, 30), "size": 7}]``,
        in the photo's pixels (:mod:`lit_colorize.user_hints`); :class:`HintError` for a bad one.
        ``reference`` (an image, as ``image``, any size) or ``palette`` (``["#2a6fdb", "#c8a27a"]``,
        optional ``weights``) (a model trained with ``global_hints: true``): the colors the whole
        photo should hold (:mod:`lit_colorize.global_hints`); :class:`GlobalHintError` for a bad one.
        ``global_hint``: a vector :meth:`global_hint` made before, so one reference read once serves many calls."""
        return self._colorize(image, _temperatures(temperature), hints, self._hint_vector(reference, palette, weights, global_hint))

    def _hint_vector(self, reference: Any, palette: Any, weights: Any, global_hint: Tensor | None) -> Tensor | None:
        """A vector made before (``global_hint``) or :meth:`global_hint`'s of the others; not both."""
        if global_hint is None:
            return self.global_hint(reference, palette, weights)
        if reference is not None or palette is not None or weights is not None:
            raise GlobalHintError("give a global_hint vector or a reference/palette to make one from, not both")
        if not self.module.net.global_hints:
            raise GlobalHintError("a global hint was given, but this model was trained without global hints (global_hints: false)")
        return global_hint

    def global_hint(
        self, reference: ImageLike | None = None, palette: Sequence[Any] | None = None, weights: Sequence[float] | None = None
    ) -> Tensor | None:
        """The network's global hint vector (Q + 2,) of a ``reference`` image or a ``palette`` (see
        :meth:`colorize`), None when neither is given; :class:`GlobalHintError` in one line otherwise."""
        if reference is None and palette is None:
            if weights is not None:
                raise GlobalHintError("weights were given without a palette; pass palette=['#rrggbb', ...] with them")
            return None
        if reference is not None and (palette is not None or weights is not None):
            raise GlobalHintError("give a reference photo or a palette (with its weights), not both")
        if not self.module.net.global_hints:
            raise GlobalHintError(
                f"a {'reference photo' if palette is None else 'palette'} was given, but this model was trained without global "
                "hints (global_hints: false); use a model trained with global_hints: true, or leave it out"
            )
        grid_size = self.module.hparams.grid_size
        if palette is not None:
            return global_hint_vector(palette_distribution(palette, weights, grid_size), grid_size, self.device)
        try:
            rgb, _ = _as_rgb_alpha(reference)
        except (TypeError, ValueError) as error:
            if isinstance(error, UserError):  # a file that cannot be read names itself
                raise
            raise GlobalHintError(f"the reference photo cannot be used: {error}") from None
        return global_hint_vector(reference_distribution(rgb.to(self.device), grid_size), grid_size, self.device)

    def _colorize(self, image: ImageLike | Sequence[ImageLike], temperatures: list[float] | None, hints: Any, global_hint: Tensor | None) -> Any:
        if isinstance(image, (list, tuple)):
            return [self._colorize(one, temperatures, hints, global_hint) for one in image]
        rgb, alpha = _as_rgb_alpha(image)
        checked = self._checked_hints(hints, image, rgb)
        net = self.module.net
        photo = rgb.to(self.device)
        colored = net.colorize_photo(photo, temperatures, self.working_size, checked, self.upsampling, global_hint)[0].cpu()
        if alpha is not None:
            colored = torch.cat([colored, alpha], dim=0)
        return _like(image, colored)

    def _checked_hints(self, hints: Sequence[dict] | None, image: ImageLike, rgb: Tensor) -> list:
        name = str(image) if isinstance(image, (str, Path)) else f"the {type(image).__name__} image"
        if hints and not self.module.net.hints:
            raise HintError(
                f"{name}: {len(hints)} hint(s) given, but this model was trained without hints (hints: false); "
                "train one with hints: true (configs/model/...) or leave the hints out"
            )
        return parse_hints(hints, name, *rgb.shape[-2:])

    @torch.no_grad()
    def suggest(
        self,
        image: ImageLike,
        x: float,
        y: float,
        k: int = 6,
        temperature: float = 0.8,
        hints: Sequence[dict] | None = None,
        global_hint: Tensor | None = None,
    ) -> list[dict[str, Any]]:
        """The ``k`` colors the model finds most probable at pixel (``x``, ``y``) of the photo,
        most probable first: ``{"color": "#rrggbb", "rgb": (r, g, b), "probability": p, "bin": i}``.
        Each is its bin's color (the table's mode-to-mean interpolation at ``temperature``) shown
        at that pixel's own L, as the colorized photo would show it. A classification model's
        predicted distribution gives this for free; ideepcolor shows such a palette by each click.
        ``global_hint``: a global-hints model's vector (:meth:`global_hint`), as :meth:`colorize` takes it."""
        temperature = check_temperature(temperature)
        global_hint = self._hint_vector(None, None, None, global_hint)
        net = self.module.net
        if not net.is_classifier:
            raise ValueError("suggestions need a classification model (a distribution over bins); this one regresses ab")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a whole number of colors, 1 or more, got {k!r}")
        rgb, _ = _as_rgb_alpha(image)
        rgb = rgb.to(self.device)
        checked = self._checked_hints(hints, image, rgb)
        height, width = rgb.shape[-2:]
        name = str(image) if isinstance(image, (str, Path)) else "the image"
        inside = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)) and (
            -0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5
        )
        if not inside:  # the same bounds as a hint's
            raise HintError(f"{name}: pixel (x={x!r}, y={y!r}) lies outside the {width}x{height} photo")
        lightness = full_resolution_l(rgb)
        short_side = int(self.working_size or net.predict_short_side)
        l_norm = network_input(lightness, working_size(height, width, short_side, net.size_multiple))
        channels = working_hints(checked, (height, width), tuple(l_norm.shape[-2:]), l_norm.device) if checked else None
        logits = net(net.network_input(l_norm, channels) if net.hints else l_norm, global_hint)[0].float()
        out_h, out_w = logits.shape[-2:]
        row = min(max(round(working_position(y, height, out_h)), 0), out_h - 1)
        column = min(max(round(working_position(x, width, out_w)), 0), out_w - 1)
        probabilities = torch.softmax(logits[:, row, column], dim=0)
        top = probabilities.topk(min(k, len(probabilities)))
        ab = net.color_table.bin_colors(temperature)[top.indices]  # (k, 2)
        pixel_l = lightness[min(max(round(y), 0), height - 1), min(max(round(x), 0), width - 1)]
        lab = torch.cat([pixel_l.expand(len(ab), 1), ab.to(pixel_l.dtype)], dim=1).T[:, :, None]  # (3, k, 1)
        colors = lab_to_rgb(lab)[:, :, 0].T.mul(255).round().to(torch.uint8).cpu().tolist()
        return [
            {"color": "#{:02x}{:02x}{:02x}".format(*color), "rgb": tuple(color), "probability": float(p), "bin": int(i)}
            for color, p, i in zip(colors, top.values.tolist(), top.indices.tolist())
        ]

    def colorize_frames(
        self,
        frames: Iterable[np.ndarray],
        temperature: float | None = None,
        temporal_consistency: bool = True,
        batch_frames: int = 8,
        reference: ImageLike | None = None,
        palette: Sequence[Any] | None = None,
        weights: Sequence[float] | None = None,
    ) -> Iterator[np.ndarray]:
        """For callers with their own video I/O: the frames of one video (uint8 RGB (H, W, 3),
        color or gray, one size) in, colorized frames out, one by one as they come (lazily,
        ``batch_frames`` at a time through the network). ``temporal_consistency``: stabilise
        the colors along the optical flow of the gray frames (needs the ``video`` extra).
        ``reference`` / ``palette`` (as :meth:`colorize`): one global hint for every frame,
        checked here, before the first frame is taken."""
        from lit_colorize.video.colorize import FrameColorizer

        colorizer = FrameColorizer(
            self.module.net, _temperatures(temperature), self.working_size, temporal_consistency, batch_frames=batch_frames,
            upsampling=self.upsampling, global_hint=self.global_hint(reference, palette, weights),
        )
        return (images[0] for images in colorizer(frames))

    def colorize_video(
        self,
        src: str | Path,
        dst: str | Path,
        temperature: float | None = None,
        temporal_consistency: bool = True,
        crf: int = 18,
        overwrite: bool = False,
        progress: bool = True,
        reference: ImageLike | None = None,
        palette: Sequence[Any] | None = None,
        weights: Sequence[float] | None = None,
        hints: Sequence[dict] | None = None,
    ) -> Any:
        """Colorizes the video file ``src`` into ``dst`` (.mp4 or .mkv): H.264 yuv420p at
        constant quality ``crf``, the source's size, frame count and frame times, its audio
        copied (re-encoded to AAC where ``dst``'s container cannot hold it). Streamed: memory
        does not depend on the video's length. ``dst`` is written under a temporary name and
        renamed when complete; an existing ``dst`` is kept unless ``overwrite``. Returns a
        :class:`~lit_colorize.video.colorize.VideoReport` (frames, bad packets skipped,
        scene cuts, seconds). Needs the ``video`` extra. ``reference`` / ``palette`` (as
        :meth:`colorize`): one global hint for the whole clip, made (or refused) before any frame is decoded.
        ``hints`` (a model trained with hints): keyframe hints ``{"frame": k, "x", "y", "color"[, "size"]}``,
        carried forward and backward along the stabiliser's flow until a scene cut (:mod:`lit_colorize.video.keyframes`)."""
        from lit_colorize.video.colorize import colorize_video
        from lit_colorize.video.io import VideoWriteError

        temperatures = _temperatures(temperature)
        global_hint = self.global_hint(reference, palette, weights)
        dst = Path(dst)
        if dst.exists() and not overwrite:
            raise VideoWriteError(f"{dst} exists; pass overwrite=True to replace it, or choose another name")
        if Path(src).resolve() == dst.resolve():
            raise VideoWriteError(f"{dst} is the input video itself; choose another output name")
        return colorize_video(
            self.module.net, src, [dst], temperatures, working_size=self.working_size, upsampling=self.upsampling,
            temporal_consistency=temporal_consistency, crf=crf, progress=progress, overwrite=overwrite, global_hint=global_hint,
            keyframe_hints=hints,
        )


def _temperatures(temperature: float | None) -> list[float] | None:
    """One checked temperature as a list; None (the model's own decoding) as it is."""
    return None if temperature is None else [check_temperature(temperature)]


def _as_rgb_alpha(image: ImageLike) -> tuple[Tensor, Tensor | None]:
    """Any accepted input -> uint8 RGB (3, H, W) and alpha (1, H, W) or None."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):  # exactly as the same file given by path (16-bit gray, EXIF, alpha)
        rgb, alpha = pillow_pixels(ImageOps.exif_transpose(image))
        tensor = torch.from_numpy(rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=2))
        tensor = tensor.permute(2, 0, 1)
    elif isinstance(image, np.ndarray):
        array = image[..., None] if image.ndim == 2 else image
        if array.ndim != 3:
            raise ValueError(f"a numpy image must be (H, W) or (H, W, C), got shape {image.shape}")
        array = np.ascontiguousarray(array)
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy()).permute(2, 0, 1)
    elif isinstance(image, Tensor):
        tensor = image[None] if image.ndim == 2 else image
        if tensor.ndim != 3:
            raise ValueError(f"a tensor image must be (H, W) or (C, H, W), got shape {tuple(image.shape)}")
    else:
        raise TypeError(f"cannot colorize a {type(image).__name__}: give a path, PIL image, numpy array or tensor")
    tensor = _to_uint8(tensor.cpu())
    channels = tensor.shape[0]
    if channels not in (1, 3, 4):
        raise ValueError(f"an image needs 1 (gray), 3 (RGB) or 4 (RGBA) channels, got {channels}")
    rgb = tensor[:1].expand(3, -1, -1) if channels == 1 else tensor[:3]
    return rgb.contiguous(), tensor[3:4].clone() if channels == 4 else None


def _to_uint8(tensor: Tensor) -> Tensor:
    """uint8 as is; float in [0, 1] scaled to 0..255. Small overshoots (resampling) are clipped;
    NaN, infinity or another scale is refused rather than turned into black or white."""
    if tensor.dtype == torch.uint8:
        return tensor
    if tensor.is_floating_point():
        values = tensor.float()
        if values.numel() and not bool(torch.isfinite(values).all()):
            raise ValueError("the image has NaN or infinite values; give finite floats in [0, 1] or uint8")
        low, high = (float(values.min()), float(values.max())) if values.numel() else (0.0, 1.0)
        if low < -FLOAT_RANGE_TOLERANCE or high > 1 + FLOAT_RANGE_TOLERANCE:
            raise ValueError(
                f"float image values must lie in [0, 1], got {low:g} to {high:g}; divide by 255 (or 65535), or give uint8"
            )
        return values.clamp(0, 1).mul(255).round().to(torch.uint8)
    raise TypeError(f"image values must be uint8 or float in [0, 1], got {tensor.dtype}")


def _like(source: ImageLike, colored: Tensor) -> Any:
    if isinstance(source, Tensor):
        return colored
    array = colored.permute(1, 2, 0).numpy()
    if isinstance(source, np.ndarray):
        return array
    return Image.fromarray(array)
