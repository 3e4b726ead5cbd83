"""The chunked head cross-entropy against the plain path: 1x1 convolution + F.cross_entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lit_colorize.chunked_head import chunked_head_argmax, chunked_head_cross_entropy
from lit_colorize.module import ColorizationModule

K = 36


def reference(features, weight, bias, targets, target_weights, pixel_weights):
    """The plain path, written out: full logits, log-softmax, weighted mean over pixels."""
    logits = F.conv2d(features, weight, bias)
    log_probs = logits.log_softmax(dim=1)
    if target_weights is None:
        pixel_loss = -log_probs.gather(1, targets[:, None])[:, 0]
    else:
        pixel_loss = -(target_weights * log_probs.gather(1, targets)).sum(dim=1)
    if pixel_weights is not None:
        pixel_loss = pixel_loss * pixel_weights
    return pixel_loss.mean(), logits.argmax(dim=1)


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_same_loss_gradients_and_argmax_as_the_plain_path(soft: bool, weighted: bool, channels_last: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    batch, channels, height, width = 3, 5, 7, 9  # 189 pixels: chunks of 50 leave a ragged last one

    def rand(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    features = rand(batch, channels, height, width)
    if channels_last:
        features = features.contiguous(memory_format=torch.channels_last)
    features.requires_grad_()
    weight = rand(K, channels, 1, 1).requires_grad_()
    bias = rand(K).requires_grad_()
    if soft:
        targets = torch.randint(0, K, (batch, 5, height, width), generator=generator)
        target_weights = torch.rand(batch, 5, height, width, generator=generator, dtype=torch.float64)
        target_weights = target_weights / target_weights.sum(dim=1, keepdim=True)
    else:
        targets, target_weights = torch.randint(0, K, (batch, height, width), generator=generator), None
    pixel_weights = torch.rand(batch, height, width, generator=generator, dtype=torch.float64) if weighted else None

    expected_loss, expected_argmax = reference(features, weight, bias, targets, target_weights, pixel_weights)
    expected_grads = torch.autograd.grad(expected_loss, (features, weight, bias))
    loss, argmax = chunked_head_cross_entropy(features, weight, bias, targets, target_weights, pixel_weights, chunk=50)
    grads = torch.autograd.grad(loss, (features, weight, bias))

    torch.testing.assert_close(loss, expected_loss, rtol=1e-12, atol=1e-12)
    assert torch.equal(argmax, expected_argmax)
    for got, expected in zip(grads, expected_grads):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    assert torch.equal(chunked_head_argmax(features, weight, bias, chunk=50), expected_argmax)


def test_masked_classes_get_no_probability_and_no_gradient() -> None:
    features = torch.randn(2, 4, 3, 3, requires_grad=True)
    weight = torch.randn(K, 4, 1, 1, requires_grad=True)
    raw_bias = torch.randn(K, requires_grad=True)
    allowed = torch.zeros(K, dtype=torch.bool)
    allowed[[1, 5, 30]] = True
    bias = raw_bias.masked_fill(~allowed, float("-inf"))
    targets = torch.tensor([1, 5, 30]).repeat(6)[:18].view(2, 3, 3)
    loss, argmax = chunked_head_cross_entropy(features, weight, bias, targets, chunk=4)
    loss.backward()
    assert torch.isfinite(loss) and set(argmax.unique().tolist()) <= {1, 5, 30}
    assert torch.all(raw_bias.grad[~allowed] == 0) and torch.all(weight.grad[~allowed] == 0)
    expected, _ = reference(features.detach(), weight.detach(), bias.detach(), targets, None, None)
    torch.testing.assert_close(loss.detach(), expected)


def test_fused_and_plain_module_steps_agree_with_every_loss_option() -> None:
    """Same weights, same batch, every option on: the two paths give one loss and one update."""
    options = dict(widths=(4, 8), class_rebalancing=True, soft_targets=5, gamut_classes=True, gray_image_threshold=3.0)
    torch.manual_seed(0)
    fused = ColorizationModule(**options, fused_head_loss=True)
    plain = ColorizationModule(**options, fused_head_loss=False)
    counts = torch.rand(324) * (torch.rand(324) > 0.3)
    for module in (fused, plain):
        module.load_state_dict(fused.state_dict())
        module.color_table.counts.copy_(counts)
        module.on_color_table_built()
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    images[0] = 128  # one near-gray image: weight 0
    batch = fused.prepare_batch(images)
    results = []
    for module in (fused, plain):
        loss, predicted = (result := module.compute_loss(batch)).loss, result.predicted_bins
        loss.backward()
        results.append((loss.detach(), predicted, {n: p.grad for n, p in module.named_parameters()}))
    (loss_f, pred_f, grads_f), (loss_p, pred_p, grads_p) = results
    torch.testing.assert_close(loss_f, loss_p, rtol=1e-5, atol=1e-6)
    assert torch.equal(pred_f, pred_p)
    for name in grads_p:
        torch.testing.assert_close(grads_f[name], grads_p[name], rtol=1e-4, atol=1e-6, msg=name)
