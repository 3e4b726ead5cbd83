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

import torch
from torch import Tensor

from lit_colorize.errors import check_temperatures, check_working_size


@dataclass(frozen=True)
class RenderSettings:
    """What predict renders: one image per temperature, from the network's view of the photo
    at ``working_size`` (its shorter side; None: the training images' size)."""

    temperatures: Sequence[float] = (0.8,)  # kept as a tuple
    working_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperatures", tuple(check_temperatures(self.temperatures, "temperatures")))
        object.__setattr__(self, "working_size", check_working_size(self.working_size))


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


@dataclass
class ColorizedPhoto:
    """What predicting one item gives: uint8 RGB (3, H, W) per temperature, or its error."""

    item: PhotoItem
    temperatures: list[float] = field(default_factory=list)
    images: list[Tensor] = field(default_factory=list)


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
