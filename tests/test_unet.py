"""The U-Net against hand-checked parameter counts of the thesis's models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lit_colorize.unet import PRESETS, ConvBlock, GlobalContextFusion, UNet, widths_from


def conv_block_params(cin: int, cout: int) -> int:
    """Two 3x3 convolutions with bias, each followed by a BatchNorm (weight + bias)."""
    return (cin * cout * 9 + cout + 2 * cout) + (cout * cout * 9 + cout + 2 * cout)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_thesis_small_32_model_has_35748_parameters() -> None:
    # By hand: blocks 1->8, 8->16, 16->32; up 32->16 (+skip 16: block 32->16), up 16->8 (+skip: 16->8); head 8->324.
    by_hand = (
        conv_block_params(1, 8) + conv_block_params(8, 16) + conv_block_params(16, 32)
        + (32 * 16 * 9 + 16) + conv_block_params(32, 16)
        + (16 * 8 * 9 + 8) + conv_block_params(16, 8)
        + (8 * 324 + 324)
    )  # fmt: skip
    assert by_hand == 35_748
    assert count(UNet(1, 324, PRESETS["thesis32_small"])) == 35_748


def test_thesis_32_model_has_135684_parameters() -> None:
    assert count(UNet(1, 324, PRESETS["thesis32"])) == 135_684


def test_thesis_128_model_has_an_8x8_bottleneck() -> None:
    net = UNet(1, 324, PRESETS["thesis128"]).eval()
    assert net.size_multiple == 16
    seen = {}

    def keep_shape(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        seen["bottleneck"] = output.shape

    net.encoders[-1].register_forward_hook(keep_shape)
    with torch.no_grad():
        out = net(torch.rand(1, 1, 128, 128))
    assert out.shape == (1, 324, 128, 128)
    assert seen["bottleneck"] == (1, 256, 8, 8)


def test_width_divider() -> None:
    assert widths_from(16, 5) == (16, 32, 64, 128, 256)
    assert widths_from(16, 5, width_divider=2) == (8, 16, 32, 64, 128)
    assert widths_from(16, 3, width_divider=2) == PRESETS["thesis32_small"]
    with pytest.raises(ValueError, match="no channels"):
        widths_from(2, 3, width_divider=4)


@pytest.mark.parametrize(("name", "kind"), [("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU), ("tanh", nn.Tanh)])
def test_activation_is_configurable(name: str, kind: type[nn.Module]) -> None:
    block = ConvBlock(1, 4, name)
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, kind, nn.Conv2d, nn.BatchNorm2d, kind]
    with pytest.raises(ValueError, match="unknown activation"):
        ConvBlock(1, 4, "gelu")


def test_layers_follow_the_thesis() -> None:
    net = UNet(1, 2, (8, 16, 32))
    conv = net.encoders[0][0]
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (1, 1))
    up = net.upsamplers[0]
    assert (up.kernel_size, up.stride, up.padding, up.output_padding) == ((3, 3), (2, 2), (1, 1), (1, 1))
    assert net.head.kernel_size == (1, 1) and net.head.out_channels == 2
    assert isinstance(net.pool, nn.MaxPool2d) and net.pool.kernel_size == 2


def test_input_size_must_fit_the_depth() -> None:
    net = UNet(1, 2, (8, 16, 32))
    assert net(torch.rand(2, 1, 24, 40)).shape == (2, 2, 24, 40)
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.rand(1, 1, 30, 32))


def test_global_context_adds_three_c_squared_plus_four_c_parameters() -> None:
    # By hand, at the 32-channel bottleneck: context Linear 32*32+32, local 1x1 conv 32*32+32,
    # from_context Linear 32*32 (no bias), BatchNorm 2*32: 3 * 32**2 + 4 * 32 = 3,200.
    assert count(UNet(1, 324, PRESETS["thesis32_small"], global_context=True)) == 35_748 + 3_200


def test_global_context_equals_concatenation_and_a_1x1_convolution() -> None:
    # Iizuka et al.'s fusion layer, computed the literal way as an oracle: tile the global
    # vector over every position, concatenate, 1x1 convolution.
    torch.manual_seed(0)
    fusion = GlobalContextFusion(6).eval()
    x = torch.randn(2, 6, 5, 7)
    with torch.no_grad():
        vector = fusion.context(x.mean(dim=(2, 3)))
        tiled = vector[:, :, None, None].expand(-1, -1, 5, 7)
        weight = torch.cat([fusion.local.weight, fusion.from_context.weight[:, :, None, None]], dim=1)
        literal = fusion.out(F.conv2d(torch.cat([x, tiled], dim=1), weight, fusion.local.bias))
        assert torch.allclose(fusion(x), literal, atol=1e-5)


def test_global_context_lets_every_pixel_see_the_whole_photo() -> None:
    # The top-left corner reaches the bottom-right outputs only through the global vector: the
    # plain U-Net's receptive field is far smaller than 64 px, so its gradient there is exactly 0.
    for global_context, reaches in ((False, False), (True, True)):
        torch.manual_seed(0)
        net = UNet(1, 2, (8, 16, 32), global_context=global_context).eval()
        image = torch.rand(1, 1, 64, 64, requires_grad=True)
        net(image)[..., -8:, -8:].sum().backward()
        assert (image.grad[..., :16, :16].abs().max().item() > 0) is reaches, global_context
