"""Colorizer: colorize photos from Python with a trained checkpoint, no Trainer needed.

    from lit_colorize import Colorizer
    colorizer = Colorizer.from_checkpoint("best.ckpt", device="cpu")
    color = colorizer.colorize("old_photo.jpg", temperature=0.8)   # a PIL image, full size
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from lit_colorize.imageio import read_image
from lit_colorize.module import ColorizationModule, add_missing_buffers, require_color_table

ImageLike = Union[str, Path, Image.Image, np.ndarray, Tensor]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A Lightning checkpoint, read with ``weights_only=True`` (no code from the file runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure here means the same thing to the user
        raise ValueError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise ValueError(f"{path} is not a lit-colorize checkpoint (no state_dict or hyper_parameters)")
    return checkpoint


def module_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> ColorizationModule:
    """Rebuild the ColorizationModule of a checkpoint: hyperparameters, weights and bin table."""
    checkpoint = load_checkpoint(path, map_location)
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
    module = ColorizationModule(**hparams)
    state = checkpoint["state_dict"]
    if module.is_classifier:
        require_color_table(state, f"checkpoint {path}")
    add_missing_buffers(state, module.hparams.grid_size)
    module.load_state_dict(state)
    return module.eval()


class Colorizer:
    """A trained colorization model, ready to colorize photos of any size.

    ``colorize`` accepts one image or a list: a path, a PIL image, a numpy array (H, W),
    (H, W, 3) or (H, W, 4), or a tensor (H, W), (1|3|4, H, W); uint8, or float in [0, 1].
    Color inputs are taken to gray first; their L is kept, so the output has the input's
    size and detail. Alpha is kept. Each result has the kind of its input (a path gives a
    PIL image): numpy (H, W, 3|4) uint8, tensor (3|4, H, W) uint8, or a PIL image.
    """

    def __init__(self, module: ColorizationModule, device: str | torch.device = "cpu", working_size: int | None = None) -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.working_size = working_size

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", working_size: int | None = None) -> Colorizer:
        return cls(module_from_checkpoint(path, map_location="cpu"), device, working_size)

    @torch.no_grad()
    def colorize(self, image: ImageLike | Sequence[ImageLike], temperature: float = 0.8) -> Any:
        if isinstance(image, (list, tuple)):
            return [self.colorize(one, temperature) for one in image]
        rgb, alpha = _as_rgb_alpha(image)
        colored = self.module.colorize_photo(rgb.to(self.device), [temperature], self.working_size)[0].cpu()
        if alpha is not None:
            colored = torch.cat([colored, alpha], dim=0)
        return _like(image, colored)


def _as_rgb_alpha(image: ImageLike) -> tuple[Tensor, Tensor | None]:
    """Any accepted input -> uint8 RGB (3, H, W) and alpha (1, H, W) or None."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        array = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
        tensor = torch.from_numpy(array.copy()).permute(2, 0, 1)
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
    if tensor.dtype == torch.uint8:
        return tensor
    if tensor.is_floating_point():
        return tensor.float().clamp(0, 1).mul(255).round().to(torch.uint8)
    raise TypeError(f"image values must be uint8 or float in [0, 1], got {tensor.dtype}")


def _like(source: ImageLike, colored: Tensor) -> Any:
    if isinstance(source, Tensor):
        return colored
    array = colored.permute(1, 2, 0).numpy()
    if isinstance(source, np.ndarray):
        return array
    return Image.fromarray(array)
