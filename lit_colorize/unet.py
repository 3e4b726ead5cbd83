"""The U-Net of the ColorUNet thesis (Billaut et al. 2018), configurable in depth and width."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

Activation = Literal["relu", "leaky_relu", "tanh"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh}

#: Width presets of the thesis. "thesis32_small" with 324 outputs has 35,748 parameters,
#: "thesis32" 135,684; "thesis128" has a 8x8 bottleneck for 128x128 inputs.
PRESETS: dict[str, tuple[int, ...]] = {
    "thesis32_small": (8, 16, 32),
    "thesis32": (16, 32, 64),
    "thesis128": (16, 32, 64, 128, 256),
}


def make_activation(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}") from None


def widths_from(base_width: int, depth: int, width_divider: int = 1) -> tuple[int, ...]:
    """Doubling widths ``base * 2**i / divider`` for ``depth`` levels (the thesis's divider)."""
    widths = tuple(base_width * 2**i // width_divider for i in range(depth))
    if min(widths) < 1:
        raise ValueError(f"base_width={base_width} / width_divider={width_divider} leaves a level with no channels")
    return widths


class ConvBlock(nn.Sequential):
    """Twice: 3x3 convolution (stride 1, padding 1) -> BatchNorm -> activation."""

    def __init__(self, in_channels: int, out_channels: int, activation: str = "relu") -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            make_activation(activation),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            make_activation(activation),
        )


class GlobalContextFusion(nn.Module):
    """Iizuka et al. (2016)'s fusion of a global scene vector into every position, cheaply.

    The bottleneck's mean over all positions goes through a linear layer and an activation
    (the global feature). Iizuka et al. concatenate it to every position and mix with a 1x1
    convolution; that equals a 1x1 convolution of the features plus a linear map of the global
    vector, added at every position, which is what this computes (no (B, 2C, H, W) tensor).
    A forest or a sea photo is then decided for the whole image, not patch by patch.
    """

    def __init__(self, channels: int, activation: str = "relu") -> None:
        super().__init__()
        self.context = nn.Sequential(nn.Linear(channels, channels), make_activation(activation))
        self.local = nn.Conv2d(channels, channels, 1)
        self.from_context = nn.Linear(channels, channels, bias=False)
        self.out = nn.Sequential(nn.BatchNorm2d(channels), make_activation(activation))

    def forward(self, x: Tensor, source: Tensor | None = None) -> Tensor:
        """``source``: the features whose mean makes the global vector (default ``x`` itself)."""
        context = self.from_context(self.context((x if source is None else source).mean(dim=(2, 3))))
        return self.out(self.local(x) + context[:, :, None, None])


class GlobalHintFusion(nn.Module):
    """Zhang et al. (2017)'s global hints at the bottleneck: the hint vector (a color
    distribution, its saturation, a "none" flag; :mod:`lit_colorize.global_hints`) through a
    small MLP, added at every position. Added after the scene context, so with
    ``context_channels`` the global hint still reaches every image's features once."""

    def __init__(self, size: int, channels: int, activation: str = "relu") -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(size, channels), make_activation(activation), nn.Linear(channels, channels))

    def forward(self, x: Tensor, vector: Tensor) -> Tensor:
        """``x`` (B, C, h, w), ``vector`` (B, size) -> ``x`` plus the vector's term at every position."""
        return x + self.mlp(vector.to(x.dtype))[:, :, None, None]


class UNet(nn.Module):
    """Encoder of ConvBlocks and 2x2 max-pools, decoder of stride-2 transposed convolutions
    concatenated with the encoder block of the same size, and a 1x1 output convolution.

    ``widths`` lists the channels per level, the last being the bottleneck; inputs must be
    divisible by ``2 ** (len(widths) - 1)``. ``output_stride`` 2 or 4 stops the decoder one
    or two levels early: outputs at 1/2 or 1/4 of the input size, for less compute.
    ``global_context`` fuses a global scene vector into the bottleneck (:class:`GlobalContextFusion`).
    ``context_channels`` k: that vector is computed from the first k input channels only, the
    others zeroed, by a second encoder pass in the same batch. A user-guided network's hint
    channels then reach the output through its convolutions alone, i.e. only within their
    receptive field, and never through a mean over the whole photo (issue 31: a hint recoloured
    the whole photo). None: from all channels, as checkpoints trained before the option.
    ``global_hint_size`` n: :meth:`features` also takes a (B, n) global hint vector, fused at the
    bottleneck (:class:`GlobalHintFusion`); None: no such input, as checkpoints before it.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 324,
        widths: Sequence[int] = PRESETS["thesis32_small"],
        activation: Activation = "relu",
        output_stride: int = 1,
        global_context: bool = False,
        context_channels: int | None = None,
        global_hint_size: int | None = None,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2:
            raise ValueError(f"a U-Net needs at least two levels of widths, got {widths}")
        if context_channels is not None and not (global_context and 1 <= context_channels < in_channels):
            raise ValueError(
                f"context_channels={context_channels} needs global_context and 1 <= context_channels < in_channels={in_channels}"
            )
        self.context_channels, self.global_hint_size = context_channels, global_hint_size
        skipped_levels = output_stride.bit_length() - 1
        if output_stride < 1 or output_stride != 1 << skipped_levels or skipped_levels >= len(widths):
            raise ValueError(f"output_stride must be a power of 2 below 2 ** {len(widths) - 1} + 1, got {output_stride}")
        self.widths = widths
        self.output_stride = output_stride
        self.encoders = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.encoders.append(ConvBlock(channels, width, activation))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.global_context = GlobalContextFusion(channels, activation) if global_context else None
        self.global_hint = GlobalHintFusion(global_hint_size, channels, activation) if global_hint_size else None
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for skip_width in list(reversed(widths[:-1]))[: len(widths) - 1 - skipped_levels]:
            self.upsamplers.append(
                nn.ConvTranspose2d(channels, skip_width, 3, stride=2, padding=1, output_padding=1)
            )
            self.decoders.append(ConvBlock(2 * skip_width, skip_width, activation))
            channels = skip_width
        self.head = nn.Conv2d(channels, out_channels, 1)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** (len(self.widths) - 1)

    def forward(self, x: Tensor, global_hint: Tensor | None = None) -> Tensor:
        return self.head(self.features(x, global_hint))

    def features(self, x: Tensor, global_hint: Tensor | None = None) -> Tensor:
        """Everything before the 1x1 head: (B, widths[k], H / stride, W / stride). The
        classification loss applies the head itself, in chunks (see ``lit_colorize.chunked_head``).
        ``global_hint`` (B, global_hint_size): required exactly when the U-Net has that input."""
        if (global_hint is None) != (self.global_hint is None):
            needed = "needs a global hint vector" if global_hint is None else "has no global hint input"
            raise ValueError(f"this U-Net {needed} (global_hint_size={self.global_hint_size})")
        tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()  # shapes are symbolic there
        if not tracing and (x.shape[-1] % self.size_multiple or x.shape[-2] % self.size_multiple):
            raise ValueError(
                f"input size {tuple(x.shape[-2:])} is not a multiple of {self.size_multiple} "
                f"(2 ** number of poolings for widths {self.widths})"
            )
        batch, source = x.shape[0], None
        if self.global_context is not None and self.context_channels is not None:
            kept = x[:, : self.context_channels]
            x = torch.cat([x, torch.cat([kept, torch.zeros_like(x[:, self.context_channels :])], dim=1)])
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level:
                x = self.pool(x)
            x = encoder(x)
            skips.append(x[:batch])
        if self.global_context is not None:
            if self.context_channels is not None:
                x, source = x[:batch], x[batch:]
            x = self.global_context(x, source)
        if self.global_hint is not None:
            x = self.global_hint(x, global_hint)
        for upsample, decoder, skip in zip(self.upsamplers, self.decoders, reversed(skips[:-1])):
            x = decoder(torch.cat([upsample(x), skip], dim=1))
        return x
