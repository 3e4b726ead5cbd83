"""A training step never reads a device value on the host (on a GPU each read stalls the queue).

From the batch's arrival on the device (Lab, bins, targets) through forward, loss, metrics and
backward to the update, nothing waits for the device; the one read is the NaN check just before
the update, once per optimizer step. Checked on the CPU by recording every Python-level read of
a tensor's value (``tests.helpers.HostReadProbe``); ``tests/test_gpu.py`` checks the model step
on CUDA with torch's sync debug mode, which also sees the reads inside torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from datamodules.cifar import CIFAR100Subset
from datamodules.landscape import landscape_augmentation
from lit_colorize.batches import PreparedBatch
from lit_colorize.divergence import NonFiniteLossError
from lit_colorize.losses import LossOutput
from lit_colorize.module import ColorizationModule
from tests.helpers import HostReadProbe, quick_trainer, tiny_toyshapes


class ProbedModule(ColorizationModule):
    """Records host reads from each training batch's arrival on the device (Lab, bins,
    augmentation) to just before its update."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probe = HostReadProbe()
        self.probed_steps = 0

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer.training:
            self.probe.start()
        return super().on_after_batch_transfer(batch, dataloader_idx)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.probe.stop()
        self.probed_steps += 1
        super().on_before_optimizer_step(optimizer)  # the NaN check: the one read, by design


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"class_rebalancing": True, "soft_targets": 5, "gamut_classes": True, "gray_image_threshold": 2.0},
        {"fused_head_loss": False, "channels_last": False, "output_stride": 2},
        {"head": "regression"},
        {"degrade_input": True, "output_stride": 4},
    ],
    ids=["defaults", "loss-options", "plain-loss", "regression", "degraded-input"],
)
def test_a_training_step_never_reads_a_device_value_on_the_host(tmp_path: Path, options: dict[str, Any]) -> None:
    module = ProbedModule(widths=(8, 16, 32), **options)
    trainer = quick_trainer(tmp_path, limit_train_batches=3, limit_val_batches=0, num_sanity_val_steps=0)
    try:
        trainer.fit(module, tiny_toyshapes())
    finally:
        module.probe.stop()
    assert module.probed_steps == 3
    assert module.probe.reads == []


@pytest.mark.parametrize(
    "augmentation",
    [lambda: CIFAR100Subset().train_augmentation, lambda: landscape_augmentation(32)],
    ids=["cifar", "landscape"],
)
def test_the_datamodules_augmentations_never_read_a_device_value_on_the_host(tmp_path: Path, augmentation: Any) -> None:
    data = tiny_toyshapes()
    data.train_augmentation = augmentation()
    module = ProbedModule(widths=(8, 16, 32))
    trainer = quick_trainer(tmp_path, limit_train_batches=3, limit_val_batches=0, num_sanity_val_steps=0)
    try:
        trainer.fit(module, data)
    finally:
        module.probe.stop()
    assert module.probed_steps == 3
    assert module.probe.reads == []


def test_the_probe_sees_reads_and_restores_the_tensor_methods() -> None:
    """The oracle for the test above: it must catch the reads that a sync would come from."""
    probe = HostReadProbe()
    original_bool = torch.Tensor.__bool__
    probe.start()
    try:
        x = torch.tensor([1.5, -2.0])
        if x.sum() < 0:  # __bool__
            pass
        x.max().item()
        float(x[0])
        x.tolist()
    finally:
        probe.stop()
    assert [read.split(" at ")[0] for read in probe.reads] == ["Tensor.__bool__", "Tensor.item", "Tensor.__float__", "Tensor.tolist"]
    assert all(__file__ in read for read in probe.reads)
    assert torch.Tensor.__bool__ is original_bool
    bool(torch.tensor(1.0))  # no longer recorded
    assert len(probe.reads) == 4


def test_a_nan_in_any_accumulated_batch_stops_before_the_update(tmp_path: Path) -> None:
    """With gradient accumulation the check covers every batch of the update, not just the last."""

    class FirstOfTwoTurnsNaN(ColorizationModule):
        def compute_loss(self, batch: PreparedBatch) -> LossOutput:
            result = super().compute_loss(batch)
            if self.training and self.global_step == 1 and self.divergence.losses == []:
                result.loss = result.loss * float("inf")
            return result

    module = FirstOfTwoTurnsNaN(widths=(8, 16, 32))
    trainer = quick_trainer(tmp_path, max_epochs=1, accumulate_grad_batches=2, limit_val_batches=0, num_sanity_val_steps=0)
    weights_after_first_update: dict[str, torch.Tensor] = {}

    class Snapshot(L.Callback):
        def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
            if trainer.global_step == 1 and not weights_after_first_update:
                weights_after_first_update.update({k: v.clone() for k, v in pl_module.named_parameters()})

    trainer.callbacks.append(Snapshot())
    with pytest.raises(NonFiniteLossError, match=r"train/loss is inf at global step 1 "):
        trainer.fit(module, tiny_toyshapes())
    assert weights_after_first_update
    for name, value in module.named_parameters():  # (batch-norm statistics move in every forward)
        torch.testing.assert_close(value, weights_after_first_update[name], rtol=0, atol=0, msg=name)
