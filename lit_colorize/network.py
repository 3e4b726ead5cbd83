"""ColorizationNet: the network that owns its decoding, so training, predict, the Python API and
the ONNX export all turn its output into colors the same way (as richzhang/colorization's
``BaseColor`` owns normalization and decoding). It knows nothing of Lightning."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lit_colorize.bins import ColorTable, ab_to_bin, nearest_occupied, require_color_table
from lit_colorize.chunked_head import chunked_head_argmax
from lit_colorize.color import denormalize_ab, join_lab, upsample_ab
from lit_colorize.fullres import DEFAULT_UPSAMPLING, colorize_full_resolution
from lit_colorize.global_hints import no_hint_vectors, vector_size
from lit_colorize.options import Decoding, DecodingChoice, Head, check_predict_decoding
from lit_colorize.unet import PRESETS, Activation, UNet
from lit_colorize.user_hints import UserHint, working_hints

DEFAULT_WORKING_SIZE = 256  # for a model whose training image size was never recorded
#: predict's temperature for a model that recorded no decoding of its own (mode-mean, T=0.8).
FALLBACK_TEMPERATURE = 0.8
HINT_CHANNELS = 3  # a user-guided model's extra input: hint ab (normalized, 0 = none) and the hint mask
NO_GLOBAL_HINTS = "this model was trained without global hints (global_hints: false); it cannot take a reference or palette"
#: Buffers that moved into the network; checkpoints written before hold them at the top level.
_MOVED_KEYS = ("color_table.", "class_of_bin", "train_image_size")


class ColorizationNet(UNet):
    """Network-scaled L (B, 1, H, W) in; bin logits (B, K, H, W) or normalized ab (B, 2, H, W)
    out, and the decoding of either into ab (ab units) and RGB.

    Besides the U-Net's weights it holds, as buffers (so a checkpoint restores them exactly):
    the bin color table (classification), the class of each bin (``gamut_classes``: bins never
    seen in training map to the nearest seen one, and their logits are -inf) and the training
    images' shorter side, the scale at which predict shows it photos unless the model records a
    measured one (``predict_working_size``), and the decoding it renders by default
    (``predict_decoding``, measured like the working size; see :meth:`decodings_for`).

    ``hints``: a user-guided network (Zhang et al. 2017) whose input is L plus the hint ab and
    mask (:mod:`lit_colorize.hints`), 4 channels. Given L alone it sees "no hint anywhere", so
    every automatic path (predict, the Colorizer, evaluate, export) works with it unchanged.
    ``hint_free_context`` (with ``hints`` and ``global_context``): the global scene vector is
    computed from L alone (``UNet``'s ``context_channels``), so a hint acts only within the
    convolutions' reach (issue 31); off for checkpoints trained before it.
    ``global_hints``: the network also takes a global hint vector (a color distribution over its
    bins, a saturation, a none flag: :mod:`lit_colorize.global_hints`) fused at the bottleneck;
    given none it sees the none vector, so every automatic path works with it unchanged.
    """

    def __init__(
        self,
        head: Head = "classification",
        grid_size: int = 18,
        widths: Sequence[int] = PRESETS["thesis32_small"],
        activation: Activation = "relu",
        output_stride: int = 1,
        decoding: Decoding = "mode_mean",
        gamut_classes: bool = False,
        channels_last: bool = True,
        global_context: bool = False,
        hints: bool = False,
        predict_working_size: int | None = None,
        predict_decoding: DecodingChoice | dict | None = None,
        hint_free_context: bool = False,
        global_hints: bool = False,
    ) -> None:
        self.is_classifier = head == "classification"
        num_bins = grid_size * grid_size
        in_channels = 1 + (HINT_CHANNELS if hints else 0)
        if hint_free_context and not (hints and global_context):
            raise ValueError("hint_free_context needs hints: true and global_context: true (it keeps hints out of the global context)")
        context_channels = 1 if hint_free_context else None
        super().__init__(
            in_channels, num_bins if self.is_classifier else 2, widths, activation, output_stride, global_context, context_channels,
            vector_size(grid_size) if global_hints else None,
        )
        self.hints, self.global_hints = hints, global_hints
        self.grid_size, self.decoding, self.gamut_classes, self.channels_last = grid_size, decoding, gamut_classes, channels_last
        self.color_table = ColorTable(grid_size) if self.is_classifier else None
        self.predict_working_size = predict_working_size
        self.predict_decoding = check_predict_decoding(predict_decoding)
        self.register_buffer("class_of_bin", torch.arange(num_bins))
        self.register_buffer("train_image_size", torch.tensor(0, dtype=torch.long))
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.compiled_body: Any = None  # torch.compile of the body, set by compile_body()

    def compile_body(self) -> None:
        """Run the U-Net body through ``torch.compile`` (the chunked head stays eager)."""
        if self.compiled_body is None:
            self.compiled_body = torch.compile(self.features)

    def network_input(self, l_norm: Tensor, hints: Tensor | None = None) -> Tensor:
        """What the U-Net sees: L (B, 1, H, W), and for a user-guided model the hint ab and
        mask (B, 3, H, W) after it, zeros (no hint) when ``hints`` is None."""
        if not self.hints:
            if hints is not None:
                raise ValueError("this model was trained without hints (hints: false); it cannot take any")
            return l_norm
        if hints is None:
            hints = l_norm.new_zeros(l_norm.shape[0], HINT_CHANNELS, *l_norm.shape[-2:])
        return torch.cat([l_norm, hints.to(l_norm.dtype)], dim=1)

    def global_hint_input(self, batch: int, global_hint: Tensor | None, like: Tensor) -> Tensor | None:
        """The (B, Q + 2) global hint vectors the U-Net takes: ``global_hint`` (one (Q + 2,) vector
        for the whole batch, or one per image), the none vector when None; None for a model
        without global hints, which refuses one."""
        if not self.global_hints:
            if global_hint is not None:
                raise ValueError(NO_GLOBAL_HINTS)
            return None
        if global_hint is None:
            return no_hint_vectors(batch, self.grid_size, like.device, like.dtype)
        if global_hint.shape[-1] != vector_size(self.grid_size) or global_hint.ndim not in (1, 2):
            raise ValueError(f"a global hint is (Q + 2,) or (B, Q + 2) with Q + 2 = {vector_size(self.grid_size)}, got {tuple(global_hint.shape)}")
        return global_hint.to(like.device, like.dtype).expand(batch, -1)

    def body(self, l_norm: Tensor, global_hint: Tensor | None = None) -> Tensor:
        """The U-Net body's output, before the head: channels_last and compiled when so set.
        Takes L alone (a user-guided model then sees no hint) or :meth:`network_input`'s result;
        ``global_hint``: see :meth:`global_hint_input`."""
        if self.hints and l_norm.shape[1] == 1:
            l_norm = self.network_input(l_norm)
        vector = self.global_hint_input(l_norm.shape[0], global_hint, l_norm)
        if self.channels_last:
            l_norm = l_norm.contiguous(memory_format=torch.channels_last)
        return (self.compiled_body or self.features)(l_norm, vector)

    def forward(self, l_norm: Tensor, global_hint: Tensor | None = None) -> Tensor:
        output = self.head(self.body(l_norm, global_hint))
        if self.gamut_classes and self.is_classifier:
            output = output.masked_fill(~self.in_gamut()[None, :, None, None], float("-inf"))
        return output

    def in_gamut(self) -> Tensor:
        """(K,) True for the bins that are classes (all, unless ``gamut_classes``)."""
        return self.class_of_bin == torch.arange(len(self.class_of_bin), device=self.class_of_bin.device)

    def head_bias(self) -> Tensor:
        """The head's bias, -inf for bins that are not classes (``gamut_classes``)."""
        bias = self.head.bias
        return bias.masked_fill(~self.in_gamut(), float("-inf")) if self.gamut_classes else bias

    def set_classes_from_table(self) -> None:
        """``gamut_classes``: each bin's class is the nearest bin the training colors occupy."""
        if self.gamut_classes:
            self.class_of_bin.copy_(nearest_occupied(self.color_table.counts, self.grid_size))

    @property
    def predict_short_side(self) -> int:
        """Shorter side of the network input at predict time by default: the model's measured
        ``predict_working_size``, else the training images'."""
        return int(self.predict_working_size or self.train_image_size) or DEFAULT_WORKING_SIZE

    def decodings_for(self, temperatures: Sequence[float | DecodingChoice] | None) -> list[DecodingChoice]:
        """What to render: temperatures with the model's ``decoding`` (a :class:`DecodingChoice`
        as it is); None, the model's own recommended decoding (``predict_decoding``), or the
        configured decoding at T=0.8 for a model that recorded none (predict's old default)."""
        if temperatures is None:
            return [self.predict_decoding or DecodingChoice(self.decoding, FALLBACK_TEMPERATURE)]
        return [t if isinstance(t, DecodingChoice) else DecodingChoice(self.decoding, float(t)) for t in temperatures]

    # --- decoding -----------------------------------------------------------------------
    def decode(
        self, output: Tensor, temperature: float | Tensor, bins: Tensor | None = None, decoding: Decoding | None = None
    ) -> Tensor:
        """Network output -> ab in ab units, with ``decoding`` (default: the configured one) at
        ``temperature``. ``bins``: the output's argmax when already known (mode/mean needs only it)."""
        if not self.is_classifier:
            return denormalize_ab(output.float().clamp(0.0, 1.0))
        if (decoding or self.decoding) == "annealed_mean":
            return self.color_table.annealed_mean(output, temperature)
        return self.color_table.decode(output, temperature) if bins is None else self.color_table.decode_bins(bins, temperature)

    def predicted_bins(self, output: Tensor) -> Tensor:
        """(B, h, w) the most likely bin; for regression, the bin of the predicted ab."""
        return output.argmax(dim=1) if self.is_classifier else ab_to_bin(self.decode(output, 1.0), self.grid_size)

    @torch.no_grad()
    def predict_ab(
        self,
        l_norm: Tensor,
        temperatures: Sequence[float | DecodingChoice],
        hints: Tensor | None = None,
        global_hint: Tensor | None = None,
    ) -> list[Tensor]:
        """L (B, 1, H, W) -> ab (B, 2, H, W) in ab units, one per temperature (the model's
        decoding) or :class:`DecodingChoice`, from one forward. Mode/mean decoding needs only
        each pixel's most likely bin: no (B, K, H, W) logits.
        ``hints``: a user-guided model's hint channels (B, 3, H, W) (:meth:`network_input`);
        ``global_hint``: a global-hints model's vector(s) (:meth:`global_hint_input`)."""
        choices = self.decodings_for(temperatures)
        if hints is not None:
            l_norm = self.network_input(l_norm, hints)
        if self.is_classifier and all(choice.name == "mode_mean" for choice in choices):
            bins = chunked_head_argmax(self.body(l_norm, global_hint), self.head.weight, self.head_bias())
            return [self.color_table.decode_bins(bins, choice.temperature) for choice in choices]
        output = self(l_norm, global_hint)
        return [self.decode(output, choice.temperature, decoding=choice.name) for choice in choices]

    @torch.no_grad()
    def colorize(self, l_norm: Tensor, temperatures: Sequence[float]) -> Tensor:
        """L (B, 1, H, W) -> RGB in [0, 1] for each temperature, shape (B, len(T), 3, H, W)."""
        size = l_norm.shape[-2:]
        return torch.stack([join_lab(l_norm, upsample_ab(ab, size)) for ab in self.predict_ab(l_norm, temperatures)], dim=1)

    @torch.no_grad()
    def colorize_photo(
        self,
        rgb: Tensor,
        temperatures: Sequence[float] | None = None,
        working_size: int | None = None,
        hints: Sequence[UserHint] = (),
        upsampling: str = DEFAULT_UPSAMPLING,
        global_hint: Tensor | None = None,
    ) -> list[Tensor]:
        """A photo of any size (uint8 RGB (3, H, W), color or gray) -> uint8 RGB (3, H, W) per
        temperature (None: one, the model's own decoding, :meth:`decodings_for`): ab predicted
        at the working size, upsampled as ``upsampling`` says, joined with the photo's own L.
        ``hints`` (a user-guided model): checked hints in the photo's pixels (:mod:`lit_colorize.user_hints`);
        ``global_hint`` (a global-hints model): its vector (:func:`~lit_colorize.global_hints.global_hint_vector`)."""
        short_side = int(working_size or self.predict_short_side)
        if global_hint is not None and not self.global_hints:
            raise ValueError(NO_GLOBAL_HINTS)  # before any work
        predict = self.predict_ab
        if hints or global_hint is not None:
            photo_size = tuple(rgb.shape[-2:])

            def predict(l_norm: Tensor, temperatures: Sequence[float]) -> list[Tensor]:
                channels = working_hints(hints, photo_size, tuple(l_norm.shape[-2:]), l_norm.device) if hints else None
                return self.predict_ab(l_norm, temperatures, channels, global_hint)

        decodings = self.decodings_for(temperatures)
        return colorize_full_resolution(rgb, predict, decodings, short_side, self.size_multiple, upsampling=upsampling)

    def for_export(self) -> ColorizationNet:
        """A float32, contiguous, uncompiled copy: ONNX has no memory formats (channels_last
        weights would make torch.export specialize the batch size)."""
        exported = copy.deepcopy(self).float().to(memory_format=torch.contiguous_format)
        exported.channels_last, exported.compiled_body = False, None
        return exported


def upgrade_state_dict(state_dict: dict[str, Any], grid_size: int, require_table: bool = False) -> None:
    """Bring a ``ColorizationModule`` state dict of any earlier version to this one, in place:
    the buffers that moved into the network get their new keys, and buffers a checkpoint
    predates get their defaults. ``require_table``: refuse, with the fix, one without a built
    bin color table (a classifier's colors)."""
    for key in [k for k in state_dict if k.startswith(_MOVED_KEYS)]:
        state_dict[f"net.{key}"] = state_dict.pop(key)
    num_bins = grid_size * grid_size
    state_dict.setdefault("net.train_image_size", torch.tensor(0, dtype=torch.long))
    state_dict.setdefault("net.class_of_bin", torch.arange(num_bins))
    state_dict.setdefault("class_weights", torch.ones(num_bins))
    if require_table:
        require_color_table(state_dict.get("net.color_table.built"), "this checkpoint")
