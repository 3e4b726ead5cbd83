"""On a CUDA GPU: the fused head, bf16 training and prediction agree with the CPU.

Run by ``benchmarks/gpu_check.sh`` (``pytest -m gpu``); skipped on machines without a GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from callbacks import ColorTableBuilder
from datamodules.landscape import landscape_augmentation
from lit_colorize.chunked_head import chunked_head_cross_entropy
from lit_colorize.module import ColorizationModule
from lit_colorize.precision import default_precision
from tests.conftest import requires_cuda
from tests.helpers import no_device_waits, quick_trainer, tiny_toyshapes


@pytest.fixture(autouse=True)
def full_float32_on_cuda() -> Iterator[None]:
    """No TF32 while comparing with the CPU: cuDNN convolutions use it by default (10-bit mantissa),
    enough to flip many near-tie argmaxes of a barely trained model; the tests check the math."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@requires_cuda
def test_fused_head_on_cuda_matches_the_cpu() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(4, 16, 32, 32, generator=generator)
    weight = torch.randn(324, 16, 1, 1, generator=generator)
    bias = torch.randn(324, generator=generator)
    targets = torch.randint(0, 324, (4, 32, 32), generator=generator)
    results = {}
    for device in ("cpu", "cuda"):
        inputs = [t.detach().clone().to(device).requires_grad_() for t in (features, weight, bias)]  # fresh leaves
        loss, argmax = chunked_head_cross_entropy(*inputs, targets.to(device))
        loss.backward()
        results[device] = [loss.detach().cpu(), argmax.cpu(), *(t.grad.cpu() for t in inputs)]
    for cpu, cuda in zip(results["cpu"], results["cuda"]):
        if cpu.is_floating_point():
            torch.testing.assert_close(cuda, cpu, rtol=1e-3, atol=1e-5)
        else:
            assert (cuda == cpu).float().mean() > 0.999  # argmax: near-ties may flip


@requires_cuda
def test_fit_on_the_gpu_with_the_default_precision_then_predict_like_the_cpu(tmp_path: Path) -> None:
    module = ColorizationModule(widths=(8, 16, 32))
    trainer = quick_trainer(
        tmp_path, accelerator="gpu", precision=default_precision("gpu"), limit_train_batches=4, limit_val_batches=2,
        callbacks=[ColorTableBuilder()],
    )  # fmt: skip
    trainer.fit(module, tiny_toyshapes())
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
    assert next(module.parameters()).device.type == "cuda"
    l_norm = torch.rand(2, 1, 32, 32, device="cuda")
    on_gpu = module.eval().net.colorize(l_norm, [0.0, 0.8]).cpu()
    on_cpu = module.cpu().net.colorize(l_norm.cpu(), [0.0, 0.8])
    assert (on_gpu - on_cpu).abs().gt(1 / 255).float().mean() < 1e-3  # bins may flip only at near-ties


@requires_cuda
def test_a_training_step_on_the_gpu_never_waits_for_it() -> None:
    """Augmentation, forward, fused loss, loss and accuracy metrics, backward and the update
    queue up on the GPU without one device-to-host wait. Lab and bins are left out: kornia's
    Lab conversion copies its small constant matrices to the GPU on every call."""
    module = ColorizationModule(widths=(8, 16, 32)).cuda()
    optimizer = module.configure_optimizers()
    augmentation = landscape_augmentation(32)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, device="cuda")
    for _ in range(2):  # the second step runs with the optimizer's state already made
        with no_device_waits():
            augmented = augmentation(images.float() / 255)
        batch = module.prepare_batch(augmented.clamp(0.0, 1.0))
        with no_device_waits():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                result = module.compute_loss(batch)
                loss, predicted = result.loss, result.predicted_bins
            module.train_loss(loss)
            module.train_acc(predicted, batch["bins"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    assert torch.isfinite(loss)
