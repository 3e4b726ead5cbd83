"""What predict takes and gives, whatever the source: what to render, the input item, and
the one result type that a writer saves.

Photos, the images of a training DataModule and videos all come out of
``ColorizationModule.predict_step`` as :class:`ColorizedPhoto`: the source's identity
(:class:`PhotoItem`: a path, or a name such as ``0-000012`` for a dataset's image), uint8
RGB per temperature, and what the writer needs besides (alpha, the error of a failed item).
A video travels as an item without pixels (``is_video``): it is decoded, colorized and encoded
as a stream by the writer (:mod:`lit_colorize.video.colorize`), never held whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lit_colorize.errors import UserError, check_temperatures, check_working_size
from lit_colorize.fullres import DEFAULT_UPSAMPLING, check_upsampling
from lit_colorize.global_hints import global_hint_vector, palette_distribution, reference_file_vector

if TYPE_CHECKING:
    from lit_colorize.network import ColorizationNet


@dataclass(frozen=True)
class RenderSettings:
    """What predict renders: one image per temperature (None: one, the model's own recommended
    decoding), from the network's view of the photo at ``working_size`` (its shorter side;
    None: the model's own), its ab brought to the photo's size by ``upsampling``."""

    temperatures: Sequence[float] | None = None  # kept as a tuple
    working_size: int | None = None
    upsampling: str = DEFAULT_UPSAMPLING

    def __post_init__(self) -> None:
        if self.temperatures is not None:
            object.__setattr__(self, "temperatures", tuple(check_temperatures(self.temperatures, "temperatures")))
        object.__setattr__(self, "working_size", check_working_size(self.working_size))
        object.__setattr__(self, "upsampling", check_upsampling(self.upsampling))

    def temperatures_for(self, net: ColorizationNet) -> list[float]:
        """The temperatures that name the outputs: as given, or the model's own decoding's."""
        return [choice.temperature for choice in net.decodings_for(self.temperatures)]


@dataclass  # not frozen: Lightning's batch transfer rebuilds the dataclasses it meets
class GlobalHintRequest:
    """A photo's (or video's) global hint as the user gave it: a ``reference`` photo's path or a
    ``palette`` (with ``weights``), and ``origin``, where it was given (a sidecar's path, or the
    option ``--data.reference`` / ``--data.palette``), named by every error about it."""

    reference: str | None = None
    palette: list | None = None
    weights: list | None = None
    origin: str = "--data.reference"

    def describe(self) -> str:
        """``reference photo paris.jpg`` or ``a palette of 3 colors``, as predict names it."""
        if self.reference is not None:
            return f"reference photo {self.reference}"
        count = len(self.palette or ())
        return f"a palette of {count} color{'s' if count != 1 else ''}"


class GlobalHintRefused(UserError, ValueError):
    """A global hint that cannot be used for this item; the message names where it was given."""


def request_vector(net: ColorizationNet, request: GlobalHintRequest | None) -> Tensor | None:
    """The global hint vector (Q + 2,) of ``request`` for ``net`` (None: no hint); a one-line
    :class:`UserError` naming where it was given for a model without global hints, a reference
    that cannot be read, or a palette that cannot be used."""
    if request is None:
        return None
    if not net.global_hints:
        raise GlobalHintRefused(
            f"{request.describe()} given, but this model was trained without global hints "
            f"(global_hints: false); use a model trained with global_hints: true, or leave out {request.origin}"
        )
    try:
        if request.reference is not None:
            return reference_file_vector(request.reference, net.grid_size)
        return global_hint_vector(palette_distribution(request.palette, request.weights, net.grid_size), net.grid_size)
    except UserError as error:
        raise GlobalHintRefused(f"{request.origin}: {error}") from None


@dataclass
class PhotoItem:
    """One input: a photo file, or a dataset image named by its index. ``relative_dir`` is where
    its outputs go below the output folder (the subfolder it was found in, for a folder input);
    ``rgb``/``alpha`` are None when ``error``, and for a video (``is_video``: streamed later)."""

    path: str
    relative_dir: str = ""
    rgb: Tensor | None = None
    alpha: Tensor | None = None
    error: str | None = None
    outputs_exist: bool = False  # set by the writer: every output is there already, nothing to compute
    is_video: bool = False
    hints: list | None = None  # checked hints (lit_colorize.user_hints.UserHint) for a user-guided model
    global_hint: GlobalHintRequest | None = None  # a reference or palette: the global hint (a global-hints model)
    keyframe_hints: list | None = None  # a video's hints as given ({"frame", "x", "y", "color"}), checked when it is read


@dataclass
class ColorizedPhoto:
    """What predicting one item gives: uint8 RGB (3, H, W) per temperature, or its error."""

    item: PhotoItem
    temperatures: list[float] = field(default_factory=list)
    images: list[Tensor] = field(default_factory=list)


def is_photo_batch(batch: Any) -> bool:
    """A predict batch of full-resolution photos (a list of :class:`PhotoItem`)."""
    return isinstance(batch, list) and bool(batch) and all(isinstance(item, PhotoItem) for item in batch)


# How the allocators say it: torch.OutOfMemoryError (CUDA, MPS, XPU), the CPU allocator's
# RuntimeError, and numpy's or Python's MemoryError.
_OUT_OF_MEMORY_MESSAGES = ("out of memory", "can't allocate memory", "not enough memory")


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(text in str(error).lower() for text in _OUT_OF_MEMORY_MESSAGES)


def colorize_item(item: PhotoItem, colorize: Callable[[Tensor], list[Tensor]], temperatures: Sequence[float]) -> ColorizedPhoto:
    """``colorize(rgb)`` of one photo as a :class:`ColorizedPhoto` (images on the CPU); running
    out of memory on it gives the photo's error instead, so the run goes on with the next one.
    Other exceptions are bugs and propagate."""
    if item.rgb is None:
        return ColorizedPhoto(item)
    try:
        images = [image.cpu() for image in colorize(item.rgb)]
    except Exception as error:  # noqa: BLE001 - only memory errors are the photo's; others re-raised
        if not is_out_of_memory(error):
            raise
        height, width = item.rgb.shape[-2:]
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        reason = (
            f"out of memory colorizing this {width}x{height} photo ({first_line}); "
            "free memory, use a smaller --writer.working_size, or --trainer.accelerator cpu"
        )
    else:
        return ColorizedPhoto(item, list(temperatures), images)
    if torch.cuda.is_available():  # hand back what the failed photo held before the next one
        torch.cuda.empty_cache()
    return ColorizedPhoto(replace(item, rgb=None, alpha=None, error=reason))


def predict_batch(net: ColorizationNet, batch: Any, settings: RenderSettings, batch_idx: int, dataloader_idx: int) -> list[ColorizedPhoto]:
    """``predict_step``'s work: photos (``datamodules.Photos``) at full resolution, one failing
    alone when out of memory or given hints (or a reference) a model without them cannot take; a DataModule's
    images at their own size, named ``<loader>-<index in the set>``."""
    temperatures = settings.temperatures_for(net)
    if is_photo_batch(batch):
        return [_predict_photo(net, item, settings, temperatures) for item in batch]
    decodings = net.decodings_for(settings.temperatures)
    rgb = net.colorize(batch["l"], decodings).mul(255).round_().to(torch.uint8).cpu()
    first = batch_idx * len(rgb)  # without the loader's indices: exact for all but a last, shorter batch
    indices = batch["index"].tolist() if "index" in batch else range(first, first + len(rgb))
    return [ColorizedPhoto(PhotoItem(f"{dataloader_idx}-{i:06d}"), temperatures, list(images)) for i, images in zip(indices, rgb)]


def _predict_photo(net: ColorizationNet, item: PhotoItem, settings: RenderSettings, temperatures: list[float]) -> ColorizedPhoto:
    global_hint, reason = None, None
    if item.hints and not net.hints:
        reason = (
            f"{len(item.hints)} hint(s) given (first at x={item.hints[0].x:g}, y={item.hints[0].y:g}), but this "
            "model was trained without hints (hints: false); use a model trained with hints: true, or remove them"
        )
    else:
        try:
            global_hint = request_vector(net, item.global_hint)
        except UserError as error:  # no global hints in the model, or a reference that cannot be read
            reason = str(error)
    if reason is not None:
        return ColorizedPhoto(PhotoItem(item.path, item.relative_dir, error=reason))

    def colorize(rgb: Tensor) -> list[Tensor]:
        return net.colorize_photo(rgb, settings.temperatures, settings.working_size, item.hints or (), settings.upsampling, global_hint)

    return colorize_item(item, colorize, temperatures)
