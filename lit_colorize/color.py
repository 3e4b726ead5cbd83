"""RGB <-> CIE Lab on the batch's own device, and the scalings the network sees.

Conventions (shared by the whole project):

* ``L`` is CIE L* in [0, 100]; the network sees ``L / 100`` (see :func:`normalize_l`).
* ``a``, ``b`` are CIE a*, b* (D65, 2 degree observer) in about [-128, 127] "ab units".
* The normalized ab of the thesis is ``(ab + 128) / 255`` in [0, 1]; the bins and the
  regression head live there (see :func:`normalize_ab`).
"""

from __future__ import annotations

from collections.abc import Sequence

import kornia.color
import torch
import torch.nn.functional as F
from torch import Tensor

AB_OFFSET = 128.0
AB_RANGE = 255.0
L_RANGE = 100.0


def to_float_rgb(rgb: Tensor) -> Tensor:
    """uint8 [0, 255] or float [0, 1] RGB, shape (*, 3, H, W) -> float32 in [0, 1]."""
    if rgb.ndim < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"expected RGB with shape (*, 3, H, W), got {tuple(rgb.shape)}")
    if rgb.dtype == torch.uint8:
        return rgb.float().div_(255.0)
    if not rgb.is_floating_point():
        raise TypeError(f"RGB must be uint8 or floating point, got {rgb.dtype}")
    return rgb.float()


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """RGB (uint8 or float in [0, 1]) -> Lab, computed by kornia where the tensor lives."""
    return kornia.color.rgb_to_lab(to_float_rgb(rgb))


def lab_to_rgb(lab: Tensor) -> Tensor:
    """Lab -> sRGB in [0, 1]; colors outside the sRGB gamut are clipped, not wrapped."""
    return kornia.color.lab_to_rgb(lab.float(), clip=True)


def normalize_l(lightness: Tensor) -> Tensor:
    """L* in [0, 100] -> network input in [0, 1]."""
    return lightness / L_RANGE


def denormalize_l(l_norm: Tensor) -> Tensor:
    return l_norm * L_RANGE


def normalize_ab(ab: Tensor) -> Tensor:
    """ab units -> the thesis's [0, 1] scale, (ab + 128) / 255."""
    return (ab + AB_OFFSET) / AB_RANGE


def denormalize_ab(ab_norm: Tensor) -> Tensor:
    return ab_norm * AB_RANGE - AB_OFFSET


def split_lab(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """RGB batch -> (L for the network, shape (B, 1, H, W); ab in ab units, shape (B, 2, H, W))."""
    lab = rgb_to_lab(rgb)
    return normalize_l(lab[..., :1, :, :]), lab[..., 1:, :, :]


def join_lab(l_norm: Tensor, ab: Tensor) -> Tensor:
    """Network-scaled L plus ab (ab units) -> RGB in [0, 1]."""
    if l_norm.shape[-2:] != ab.shape[-2:]:
        raise ValueError(f"L {tuple(l_norm.shape)} and ab {tuple(ab.shape)} differ in size")
    return lab_to_rgb(torch.cat([denormalize_l(l_norm), ab.to(l_norm.dtype)], dim=-3))


def upsample_ab(ab: Tensor, size: Sequence[int]) -> Tensor:
    """ab at the network's output size -> ``size`` (bilinear); unchanged when already there."""
    if tuple(ab.shape[-2:]) == tuple(size):
        return ab
    return F.interpolate(ab, size=tuple(size), mode="bilinear", align_corners=False)


def near_gray_images(ab: Tensor, threshold: float) -> Tensor:
    """(B,) True for images with no pixel of chroma |ab| above ``threshold`` (ab units).

    The one near-gray rule: Landscape drops such photos from training, and
    ``gray_image_threshold`` gives them loss weight 0.
    """
    return torch.linalg.vector_norm(ab.float(), dim=-3).flatten(1).amax(dim=1) <= threshold


def gray_rgb(l_norm: Tensor) -> Tensor:
    """The gray image a user would see for this L (ab = 0), as RGB in [0, 1]."""
    return join_lab(l_norm, torch.zeros_like(l_norm).expand(*l_norm.shape[:-3], 2, *l_norm.shape[-2:]))
