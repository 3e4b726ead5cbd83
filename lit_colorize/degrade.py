"""Old-photo degradations of the network's L input, for a whole batch on its device.

Why: a user's old photo is not a clean gray photo. A scan of one carries film grain, blur, JPEG
blocking, faded contrast, a sepia or blue tone (taken to gray) and scratches and dust; a network
trained on clean L has never seen any of them. :class:`Degradation` applies them to L (never to
the target ab), each with a probability and a random strength per image, in the order they
happen to a photo: the lens and the film (blur, then grain), the print's aging (fade, tone,
scratches, dust), the scanned file (JPEG).

Every parameter and random field is drawn on the batch's device, from ``generator`` when given
(seeded evaluation) or torch's generator there (training), and applied with tensor arithmetic and
``torch.where``: no value is read on the host, so a training step never waits for the device.
It works at the network's input size (the training crops; ``evaluate --degrade`` the working
size), so blur, scratch widths and specks are in the network's pixels. What each does, on L in
[0, 1] (L*/100):

* grain: signal-dependent noise with variance ``grain * L * (1 - L)`` (a binomial model of
  developed silver grains: none in pure black or white, most in the midtones);
* blur: a Gaussian of ``blur`` pixels (separable, 11 taps, edges replicated);
* fade: ``black + (white - black) * L``: lifted blacks, dimmed whites;
* tone: the photo's gray sRGB times per-channel gains (the sepia matrix's row sums, or a blue
  tone), clipped to [0, 1] as a print or a file clips, then taken back to gray by Rec. 601 luma
  (PIL's ``convert("L")``, what a user's software does) and read as L*. A tone that kept L*
  exactly would leave L unchanged; what reaches L is a per-image tone curve: brighter or darker,
  and compressed highlights where a channel clips;
* scratches: up to :data:`MAX_SCRATCHES` thin straight lines across the image, bright
  (emulsion scratched off) or dark, with antialiased coverage;
* dust: specks of single pixels, bright or dark, at a per-image density;
* JPEG: the 8x8 DCT of the gray sRGB levels quantized by the standard luminance table at a
  quality (IJG scaling), as a gray JPEG file is (with the exact float DCT, not libjpeg's integer
  one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_colorize.color import L_RANGE

MAX_SCRATCHES = 3
BLUR_RADIUS = 5  # taps each side: 3 sigma of the largest default blur (1.6 px)
#: Per-channel gains on gray sRGB: the classic sepia matrix's row sums, and a cold blue tone.
SEPIA = (1.351, 1.203, 0.937)
BLUE = (0.60, 0.85, 1.25)
LUMA_601 = (0.299, 0.587, 0.114)
#: JPEG's standard luminance quantization table (ITU-T T.81, Annex K.1).
JPEG_LUMINANCE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)


@dataclass
class DegradationParameters:
    """One draw of every degradation for a batch of B images (see :meth:`Degradation.sample`);
    a kind that is off holds its neutral value, said beside it."""

    grain: Tensor  # (B,) variance factor; 0: none
    blur: Tensor  # (B,) Gaussian sigma in pixels; 0: none
    black: Tensor  # (B,) where L = 0 goes (fade); 0: none
    white: Tensor  # (B,) where L = 1 goes (fade); 1: none
    tone: Tensor  # (B, 3) gains on gray sRGB; ones: none
    scratches: Tensor  # (B, S, 5): centre x, centre y (in [0, 1]), angle, half width (px), level (0 or 1)
    scratch_strength: Tensor  # (B, S) blend toward the level; 0: that scratch is absent
    dust: Tensor  # (B,) fraction of pixels that are specks; 0: none
    jpeg_quality: Tensor  # (B,) IJG quality 1..100; 0: no JPEG

    def to(self, device: torch.device) -> DegradationParameters:
        return DegradationParameters(*(getattr(self, f.name).to(device) for f in fields(self)))


def gray_srgb(l_norm: Tensor) -> Tensor:
    """L* / 100 -> the sRGB level in [0, 1] of the neutral gray of that L* (CIE and IEC 61966-2-1
    formulas for a gray, whose X, Y, Z are the white's times Y: one channel, not a Lab image)."""
    f = (l_norm.clamp(0.0, 1.0) * L_RANGE + 16.0) / 116.0
    y = torch.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29))
    return torch.where(y > 0.0031308, 1.055 * y.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * y)


def l_of_gray(srgb: Tensor) -> Tensor:
    """The sRGB level of a neutral gray -> its L* / 100 (the inverse of :func:`gray_srgb`)."""
    srgb = srgb.clamp(0.0, 1.0)
    y = torch.where(srgb > 0.04045, ((srgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, srgb / 12.92)
    lightness = torch.where(y > (6 / 29) ** 3, 116.0 * y.clamp_min((6 / 29) ** 3) ** (1 / 3) - 16.0, (29 / 3) ** 3 * y)
    return lightness / L_RANGE


def gaussian_blur(l_norm: Tensor, sigma: Tensor, radius: int = BLUR_RADIUS) -> Tensor:
    """Each image (B, 1, H, W) blurred by its own Gaussian ``sigma`` (B,) px: separable, one
    grouped convolution per axis, edges replicated; sigma 0 is the identity."""
    taps = torch.arange(-radius, radius + 1, device=l_norm.device, dtype=l_norm.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma.clamp_min(1e-3)[:, None]) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (B, 2r + 1)
    batch, _, height, width = l_norm.shape
    x = F.pad(l_norm.reshape(1, batch, height, width), (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel[:, None, None, :], groups=batch)
    x = F.conv2d(x, kernel[:, None, :, None], groups=batch)
    return x.reshape(batch, 1, height, width)


def dct_matrix(size: int = 8, device: torch.device | None = None) -> Tensor:
    """The orthonormal DCT-II matrix D: ``D @ x`` is the DCT of the column ``x``."""
    n = torch.arange(size, dtype=torch.float64)
    matrix = torch.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size)) * math.sqrt(2 / size)
    matrix[0] /= math.sqrt(2)
    return matrix.to(device=device, dtype=torch.float32)


def jpeg_tables(quality: Tensor, base: Tensor) -> Tensor:
    """IJG (libjpeg) scaling of the table ``base`` (8, 8) by ``quality`` (B,) -> (B, 8, 8)."""
    quality = quality.clamp(1.0, 100.0)
    scale = torch.where(quality < 50, 5000.0 / quality, 200.0 - 2.0 * quality)
    return torch.floor((base * scale[:, None, None] + 50.0) / 100.0).clamp(1.0, 255.0)


def jpeg_blocks(srgb: Tensor, tables: Tensor) -> Tensor:
    """Gray sRGB (B, 1, H, W) in [0, 1] through JPEG's 8x8 DCT quantization by ``tables`` (B, 8, 8):
    levels 0..255 shifted by 128, blocks from the top left, the photo padded by its edge to whole
    blocks (as an encoder pads) and cropped back."""
    batch, _, height, width = srgb.shape
    pad_h, pad_w = -height % 8, -width % 8
    x = F.pad(srgb * 255.0 - 128.0, (0, pad_w, 0, pad_h), mode="replicate")
    rows, cols = x.shape[-2] // 8, x.shape[-1] // 8
    blocks = x.reshape(batch, rows, 8, cols, 8).transpose(2, 3)  # (B, rows, cols, 8, 8)
    dct = dct_matrix(8, srgb.device)
    table = tables[:, None, None]
    coefficients = torch.round(dct @ blocks @ dct.T / table) * table
    x = (dct.T @ coefficients @ dct).transpose(2, 3).reshape(batch, 1, rows * 8, cols * 8)
    return ((x[..., :height, :width] + 128.0) / 255.0).clamp(0.0, 1.0)


def scratch_coverage(scratches: Tensor, height: int, width: int) -> Tensor:
    """How much of each pixel each scratch covers, (B, S, H, W) in [0, 1]: a line through its
    centre at its angle, ``half width`` px each side, coverage falling linearly over one pixel."""
    ys = torch.arange(height, device=scratches.device, dtype=scratches.dtype) + 0.5
    xs = torch.arange(width, device=scratches.device, dtype=scratches.dtype) + 0.5
    cx, cy, angle, half_width = (scratches[..., i, None, None] for i in range(4))
    # distance from the line through (cx, cy) with direction (sin, cos): |normal . (p - c)|
    distance = ((xs - cx * width) * angle.cos() - (ys[:, None] - cy * height) * angle.sin()).abs()
    return (half_width + 0.5 - distance).clamp(0.0, 1.0)


class Degradation(nn.Module):
    """Old-photo degradations of L (B, 1, H, W) in [0, 1]; see the module's docstring.

    ``p``: the probability that an image is degraded at all; then each kind independently with
    its own probability (``p_grain``, ...) at a strength drawn uniformly from its range.
    ``forward(l, generator=None)`` draws and applies; :meth:`sample` and :meth:`apply` split the
    two, for a fixed draw.
    """

    def __init__(
        self,
        p: float = 0.5,
        p_grain: float = 0.5,
        p_blur: float = 0.5,
        p_fade: float = 0.5,
        p_tone: float = 0.5,
        p_scratches: float = 0.3,
        p_dust: float = 0.3,
        p_jpeg: float = 0.5,
        grain: tuple[float, float] = (0.002, 0.03),
        blur: tuple[float, float] = (0.4, 1.6),
        black: tuple[float, float] = (0.03, 0.25),
        white: tuple[float, float] = (0.75, 0.97),
        tone: tuple[float, float] = (0.5, 1.0),
        scratch_half_width: tuple[float, float] = (0.2, 0.8),
        dust: tuple[float, float] = (5e-4, 4e-3),
        jpeg_quality: tuple[float, float] = (10.0, 60.0),
    ) -> None:
        super().__init__()
        chances = {"p": p, "p_grain": p_grain, "p_blur": p_blur, "p_fade": p_fade, "p_tone": p_tone,
                   "p_scratches": p_scratches, "p_dust": p_dust, "p_jpeg": p_jpeg}  # fmt: skip
        for name, value in chances.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Degradation: {name} is a probability, in [0, 1]; got {value}")
        if blur[1] > BLUR_RADIUS / 3:
            raise ValueError(f"Degradation: blur up to {blur[1]} px needs more than {BLUR_RADIUS} taps; keep it <= {BLUR_RADIUS / 3:.2f}")
        self.chances = chances
        # constants as buffers: they move with the module, so no host data is copied per batch
        self.register_buffer("tones", torch.tensor([SEPIA, BLUE]), persistent=False)
        self.register_buffer("luma", torch.tensor(LUMA_601), persistent=False)
        self.register_buffer("jpeg_luminance", torch.tensor(JPEG_LUMINANCE, dtype=torch.float32), persistent=False)
        self.ranges = {"grain": grain, "blur": blur, "black": black, "white": white, "tone": tone,
                       "scratch_half_width": scratch_half_width, "dust": dust, "jpeg_quality": jpeg_quality}  # fmt: skip

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in {**self.chances, **self.ranges}.items())

    def sample(self, batch: int, device: torch.device, generator: torch.Generator | None = None) -> DegradationParameters:
        """One draw for ``batch`` images, on ``device`` (a ``generator`` must live there too)."""
        u = torch.rand(batch, 16, device=device, generator=generator)
        scratch_u = torch.rand(batch, MAX_SCRATCHES, 7, device=device, generator=generator)
        degraded = u[:, 0] < self.chances["p"]

        def on(column: int, chance: str) -> Tensor:
            return degraded & (u[:, column] < self.chances[chance])

        def strength(column: int, name: str) -> Tensor:
            low, high = self.ranges[name]
            return low + (high - low) * u[:, column]

        def off_or(column: int, chance: str, value: Tensor, neutral: float) -> Tensor:
            mask = on(column, chance)
            return torch.where(mask.view(-1, *[1] * (value.ndim - 1)), value, torch.full_like(value, neutral))

        tone_color = torch.where((u[:, 10] < 0.5)[:, None], self.tones[0], self.tones[1])
        tone = 1.0 + strength(11, "tone")[:, None] * (tone_color - 1.0)
        low, high = self.ranges["scratch_half_width"]
        scratches = torch.stack(
            [scratch_u[..., 0], scratch_u[..., 1], math.pi * scratch_u[..., 2], low + (high - low) * scratch_u[..., 3],
             (scratch_u[..., 4] < 0.5).float()], dim=-1,
        )  # fmt: skip
        # each scratch of a scratched image is there with probability 1/2, blended 50-100%
        present = on(12, "p_scratches")[:, None] & (scratch_u[..., 5] < 0.5)
        scratch_strength = torch.where(present, 0.5 + 0.5 * scratch_u[..., 6], torch.zeros_like(scratch_u[..., 6]))
        return DegradationParameters(
            grain=off_or(1, "p_grain", strength(2, "grain"), 0.0),
            blur=off_or(3, "p_blur", strength(4, "blur"), 0.0),
            black=off_or(5, "p_fade", strength(6, "black"), 0.0),
            white=off_or(5, "p_fade", strength(7, "white"), 1.0),
            tone=off_or(8, "p_tone", tone, 1.0),
            scratches=scratches,
            scratch_strength=scratch_strength,
            dust=off_or(13, "p_dust", strength(14, "dust"), 0.0),
            jpeg_quality=off_or(9, "p_jpeg", strength(15, "jpeg_quality"), 0.0),
        )

    def apply(self, l_norm: Tensor, params: DegradationParameters, generator: torch.Generator | None = None) -> Tensor:
        """``l_norm`` (B, 1, H, W) degraded as ``params`` say (grain and dust draw their random
        fields from ``generator``); an image with every kind off comes back unchanged."""
        batch, _, height, width = l_norm.shape
        fields_u = torch.rand(batch, 2, height, width, device=l_norm.device, generator=generator)
        grain_noise = torch.randn(batch, 1, height, width, device=l_norm.device, generator=generator)

        def per_image(values: Tensor) -> Tensor:
            return values.view(batch, *[1] * (l_norm.ndim - 1))

        x = gaussian_blur(l_norm, params.blur)
        x = x + (per_image(params.grain) * x * (1.0 - x)).clamp_min(0.0).sqrt() * grain_noise
        x = per_image(params.black) + per_image(params.white - params.black) * x.clamp(0.0, 1.0)
        toned = (gray_srgb(x)[:, :, None] * params.tone[:, None, :, None, None]).clamp(0.0, 1.0)
        x = torch.where(per_image((params.tone != 1.0).any(dim=1)), l_of_gray((toned * self.luma[:, None, None]).sum(dim=2)), x)
        blend = (scratch_coverage(params.scratches, height, width) * params.scratch_strength[..., None, None]).clamp(0.0, 1.0)
        for scratch in range(params.scratches.shape[1]):  # a fixed count, not a value read
            level = params.scratches[:, scratch, 4].view(batch, 1, 1, 1)
            x = x + blend[:, scratch : scratch + 1] * (level - x)
        speck = fields_u[:, :1] < per_image(params.dust)
        x = torch.where(speck, (fields_u[:, 1:2] < 0.5).to(x.dtype), x)
        jpeg = jpeg_blocks(gray_srgb(x), jpeg_tables(params.jpeg_quality, self.jpeg_luminance))
        x = torch.where(per_image(params.jpeg_quality > 0), l_of_gray(jpeg), x)
        return x.clamp(0.0, 1.0)

    def forward(self, l_norm: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if l_norm.ndim != 4 or l_norm.shape[1] != 1 or not l_norm.is_floating_point():
            raise ValueError(f"Degradation expects a float L batch (B, 1, H, W), got {l_norm.dtype} {tuple(l_norm.shape)}")
        return self.apply(l_norm, self.sample(len(l_norm), l_norm.device, generator), generator)


def photo_generator(seed: int, index: int, device: torch.device) -> torch.Generator:
    """The generator of photo ``index`` in a seeded evaluation: each photo's draw depends on the
    seed and its place only, not on how many draws the photos before it took."""
    state = int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(state)


def seeded_degradation(seed: int | None, index: int, device: torch.device) -> Callable[[Tensor], Tensor] | None:
    """What ``lit-colorize evaluate --degrade SEED`` does to photo ``index``'s network input: the
    training degradations with every photo degraded (p = 1), drawn from
    :func:`photo_generator`, so a photo gets the same degradation in every run. None: no seed."""
    if seed is None:
        return None
    degradation, generator = Degradation(p=1.0).to(device), photo_generator(seed, index, device)
    return lambda l_norm: degradation(l_norm, generator)
