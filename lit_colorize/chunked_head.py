"""The classification head and its cross-entropy, fused and computed in chunks of pixels.

Why: with 324 bins the head (a 1x1 convolution from a few channels to K logits) and the
cross-entropy over those logits cost more than the whole U-Net on a CPU. The plain path
writes a (B, K, H, W) logits tensor, reduces over its strided channel dimension
(log-softmax forward and backward, argmax for the training accuracy) and keeps it for the
backward pass. Here the logits of a few thousand pixels at a time are made by one matrix
product in pixel-major layout, reduced while they sit in cache, and thrown away; the
backward pass makes them again from the saved features and log-sum-exp, which is cheaper
than storing and re-reading them. The loss and gradients are the same as the plain path's
(tested against it to float32 rounding); only the memory traffic changes.

The loss is the general one of ``ColorizationModule``: per pixel p,
``omega_p * (s_p * logsumexp(z_p) - sum_j w_pj * z_p[idx_pj])`` with target bins
``idx_pj`` and weights ``w_pj`` (one bin of weight 1 for hard targets, k soft-encoded bins
otherwise; ``s_p = sum_j w_pj``) and a pixel weight ``omega_p`` (class rebalancing,
near-gray images), averaged over all pixels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

#: Pixels per chunk: 2048 x 324 float32 logits are 2.6 MB, about the L2 cache of a server core.
CHUNK_PIXELS = 2048


def pixel_major(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B*H*W, C); a view when ``x`` is channels_last."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def compute_dtype(x: Tensor) -> torch.dtype:
    """float32, or float64 for float64 inputs: bf16/fp16 features (autocast) are reduced in float32."""
    return torch.promote_types(x.dtype, torch.float32)


class _ChunkedHeadCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        features: Tensor,
        weight: Tensor,
        bias: Tensor,
        target_bins: Tensor,
        target_weights: Tensor | None,
        pixel_weights: Tensor | None,
        chunk: int,
    ) -> tuple[Tensor, Tensor]:
        dtype = compute_dtype(features)
        flat = pixel_major(features).to(dtype)
        weight_t = weight.to(dtype).t()
        bias = bias.to(dtype)
        pixels = flat.shape[0]
        lse = torch.empty(pixels, device=flat.device, dtype=dtype)
        predicted = torch.empty(pixels, dtype=torch.long, device=flat.device)
        total = torch.zeros((), device=flat.device, dtype=dtype)  # not float64: MPS has none
        for start in range(0, pixels, chunk):
            end = min(start + chunk, pixels)
            logits = torch.addmm(bias, flat[start:end], weight_t)
            chunk_lse = torch.logsumexp(logits, dim=1)
            lse[start:end] = chunk_lse
            predicted[start:end] = logits.argmax(dim=1)
            target_logits = logits.gather(1, target_bins[start:end])
            if target_weights is None:
                pixel_loss = chunk_lse - target_logits[:, 0]
            else:
                w = target_weights[start:end]
                pixel_loss = w.sum(dim=1) * chunk_lse - (w * target_logits).sum(dim=1)
            if pixel_weights is not None:
                pixel_loss = pixel_loss * pixel_weights[start:end]
            total += pixel_loss.sum()
        ctx.save_for_backward(features, weight, bias, target_bins, target_weights, pixel_weights, lse)
        ctx.chunk = chunk
        ctx.mark_non_differentiable(predicted)
        return total / pixels, predicted

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: Tensor, _grad_predicted: Tensor | None) -> tuple[Tensor | None, ...]:
        with torch.autocast(grad_loss.device.type, enabled=False):  # as in forward: float32 reductions
            return _ChunkedHeadCrossEntropy._backward(ctx, grad_loss)

    @staticmethod
    def _backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        features, weight, bias, target_bins, target_weights, pixel_weights, lse = ctx.saved_tensors
        dtype = compute_dtype(features)
        flat = pixel_major(features).to(dtype)
        weight = weight.to(dtype)
        weight_t = weight.t()
        pixels = flat.shape[0]
        scale = grad_loss.to(dtype) / pixels
        grad_flat = torch.empty_like(flat)
        grad_weight = torch.zeros_like(weight)
        grad_bias = torch.zeros_like(bias)
        for start in range(0, pixels, ctx.chunk):
            end = min(start + ctx.chunk, pixels)
            rows = flat[start:end]
            grad_logits = torch.addmm(bias, rows, weight_t).sub_(lse[start:end, None]).exp_()  # softmax
            # d loss / d logits = omega * (s * softmax - scatter(w)) * d loss / d mean
            coefficient = scale.expand(end - start) if pixel_weights is None else scale * pixel_weights[start:end]
            bins = target_bins[start:end]
            if target_weights is None:
                grad_logits.mul_(coefficient[:, None])
                grad_logits.scatter_add_(1, bins, -coefficient[:, None])
            else:
                w = target_weights[start:end]
                grad_logits.mul_((coefficient * w.sum(dim=1))[:, None])
                grad_logits.scatter_add_(1, bins, -coefficient[:, None] * w)
            torch.mm(grad_logits, weight, out=grad_flat[start:end])
            grad_weight.addmm_(grad_logits.t(), rows)
            grad_bias += grad_logits.sum(dim=0)
        batch, channels, height, width = features.shape
        grad_features = grad_flat.view(batch, height, width, channels).permute(0, 3, 1, 2).to(features.dtype)
        return grad_features, grad_weight, grad_bias, None, None, None, None


def chunked_head_cross_entropy(
    features: Tensor,
    weight: Tensor,
    bias: Tensor,
    target_bins: Tensor,
    target_weights: Tensor | None = None,
    pixel_weights: Tensor | None = None,
    chunk: int = CHUNK_PIXELS,
) -> tuple[Tensor, Tensor]:
    """Cross-entropy of the 1x1-convolution head without materializing its logits.

    features (B, C, H, W); weight (K, C) or (K, C, 1, 1); bias (K,) (-inf masks a class);
    target_bins (B, k, H, W) or, for one hard bin per pixel, (B, H, W); target_weights
    (B, k, H, W) or None (weight 1); pixel_weights (B, H, W) or None. Returns the mean
    loss and the argmax bin of every pixel (B, H, W), for the training accuracy.
    """
    if target_bins.ndim == 3:
        target_bins = target_bins[:, None]
    batch, _, height, width = features.shape
    bins = pixel_major(target_bins).contiguous()
    dtype = compute_dtype(features)
    weights = None if target_weights is None else pixel_major(target_weights).to(dtype).contiguous()
    omega = None if pixel_weights is None else pixel_weights.reshape(-1).to(dtype).contiguous()
    with torch.autocast(features.device.type, enabled=False):  # the reductions stay in float32
        loss, predicted = _ChunkedHeadCrossEntropy.apply(
            features, weight.reshape(weight.shape[0], -1), bias, bins, weights, omega, chunk
        )
    return loss, predicted.view(batch, height, width)


@torch.no_grad()
def chunked_head_argmax(features: Tensor, weight: Tensor, bias: Tensor, chunk: int = CHUNK_PIXELS) -> Tensor:
    """The most likely bin of every pixel (B, H, W), without materializing the logits."""
    batch, _, height, width = features.shape
    dtype = compute_dtype(features)
    flat = pixel_major(features).to(dtype)
    weight_t = weight.reshape(weight.shape[0], -1).to(dtype).t()
    bias = bias.to(dtype)
    predicted = torch.empty(flat.shape[0], dtype=torch.long, device=flat.device)
    with torch.autocast(features.device.type, enabled=False):  # the same scores as in training
        for start in range(0, flat.shape[0], chunk):
            predicted[start : start + chunk] = torch.addmm(bias, flat[start : start + chunk], weight_t).argmax(dim=1)
    return predicted.view(batch, height, width)
