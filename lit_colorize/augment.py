"""Training augmentation of a whole batch on its device, as one affine warp per image.

Why not a chain of kornia augmentations: each of them resamples the whole batch again
(rotation, then crop, then flips), and kornia's resized crop slices and resizes image by
image. Composed into one affine matrix per image, the batch is resampled once: one
``grid_sample`` (one interpolation, so also less blur), parameters drawn on the batch's
device (no host reads); ``benchmarks/augmentation.py`` measures the difference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def affine_matrices(
    width_fraction: Tensor,
    height_fraction: Tensor,
    center_x: Tensor,
    center_y: Tensor,
    angle: Tensor,
    flip_x: Tensor,
    flip_y: Tensor,
    image_size: tuple[int, int],
) -> Tensor:
    """(B, 2, 3) matrices for ``F.affine_grid``: output coordinates -> input coordinates.

    The output shows a crop window of ``width_fraction x height_fraction`` of the input image
    (H, W), centered at ``(center_x, center_y)`` in normalized coordinates ([-1, 1]), turned
    by ``angle`` radians (in pixel space, so angles hold on non-square images), mirrored
    where ``flip_x`` / ``flip_y`` are -1.
    """
    height, width = image_size
    cos, sin = angle.cos(), angle.sin()
    half_w = width_fraction * flip_x * (width / 2)  # half the window in input pixels, mirrored
    half_h = height_fraction * flip_y * (height / 2)
    # pixel offset = R @ (half_w * x_out, half_h * y_out); normalized = pixel offset / (W/2, H/2)
    row_x = torch.stack([cos * half_w / (width / 2), -sin * half_h / (width / 2), center_x], dim=-1)
    row_y = torch.stack([sin * half_w / (height / 2), cos * half_h / (height / 2), center_y], dim=-1)
    return torch.stack([row_x, row_y], dim=-2)


class RandomCropRotateFlip(nn.Module):
    """Random resized crop, rotation and flips of an image batch (B, C, H, W), as one warp.

    The crop covers ``scale`` of the image's area with aspect ``ratio`` (as torchvision's and
    kornia's ``RandomResizedCrop``; a window larger than the image is shrunk to fit), placed
    uniformly inside the image, turned by up to ``degrees`` either way (corners that leave the
    image are black, as after kornia's rotation), mirrored left-right with probability ``hflip``
    and upside down with ``vflip``, and resampled bilinearly to ``size``.
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        degrees: float = 0.0,
        hflip: float = 0.5,
        vflip: float = 0.0,
    ) -> None:
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
        if not (0.0 <= hflip <= 1.0 and 0.0 <= vflip <= 1.0):
            raise ValueError(f"flip probabilities must be in [0, 1], got hflip={hflip}, vflip={vflip}")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.degrees, self.hflip, self.vflip = float(degrees), float(hflip), float(vflip)

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, scale={self.scale}, ratio={self.ratio}, degrees={self.degrees}, "
            f"hflip={self.hflip}, vflip={self.vflip}"
        )

    def sample_matrices(self, batch: int, image_size: tuple[int, int], device: torch.device) -> Tensor:
        """One random (2, 3) warp per image, drawn on ``device`` (torch's generator there)."""
        height, width = image_size
        u = torch.rand(batch, 7, device=device)
        area = self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 0]
        log_low, log_high = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = (log_low + (log_high - log_low) * u[:, 1]).exp()  # crop width / height, in pixels
        width_fraction = (area * aspect * height / width).sqrt().clamp(max=1.0)
        height_fraction = (area / aspect * width / height).sqrt().clamp(max=1.0)
        center_x = (1.0 - width_fraction) * (2.0 * u[:, 2] - 1.0)
        center_y = (1.0 - height_fraction) * (2.0 * u[:, 3] - 1.0)
        angle = math.radians(self.degrees) * (2.0 * u[:, 4] - 1.0)
        flip_x = torch.where(u[:, 5] < self.hflip, -1.0, 1.0)
        flip_y = torch.where(u[:, 6] < self.vflip, -1.0, 1.0)
        return affine_matrices(width_fraction, height_fraction, center_x, center_y, angle, flip_x, flip_y, image_size)

    def warp(self, images: Tensor, matrices: Tensor) -> Tensor:
        """Resample ``images`` through ``matrices`` (B, 2, 3) to ``size``, bilinear, black outside."""
        grid = F.affine_grid(matrices.to(images.dtype), [len(images), images.shape[1], *self.size], align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or not images.is_floating_point():
            raise ValueError(f"expected a float image batch (B, C, H, W), got {images.dtype} {tuple(images.shape)}")
        return self.warp(images, self.sample_matrices(len(images), tuple(images.shape[-2:]), images.device))


class RandomHorizontalFlip(nn.Module):
    """Mirror each image of a batch left-right with probability ``p``, drawn on the batch's
    device (no host reads); for sets like ToyShapes that need no crop, so nothing is resampled."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"the flip probability must be in [0, 1], got {p}")
        self.p = float(p)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, images: Tensor) -> Tensor:
        flip = torch.rand(len(images), *([1] * (images.ndim - 1)), device=images.device) < self.p
        return torch.where(flip, images.flip(-1), images)
