"""ColorizationModule: device-side batches, heads, metrics, checkpoints that restore exactly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from callbacks import ColorTableBuilder
from lit_colorize import ColorizationModule
from lit_colorize.bins import ab_to_bin
from lit_colorize.color import normalize_ab, split_lab
from lit_colorize.batches import images_of
from lit_colorize.prediction import ColorizedPhoto
from tests.helpers import fitted_module, quick_trainer, tiny_toyshapes


def test_batches_become_lab_and_bins_after_transfer() -> None:
    module = ColorizationModule()
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    batch = module.on_after_batch_transfer(images, 0)
    l_norm, ab = split_lab(images)
    torch.testing.assert_close(batch["l"], l_norm)
    torch.testing.assert_close(batch["ab"], ab)
    assert torch.equal(batch["bins"], ab_to_bin(ab, 18))
    assert batch["rgb"].dtype == torch.float32 and batch["rgb"].max() <= 1.0
    # Tuples (images, labels) and dicts are accepted too.
    assert torch.equal(images_of((images, torch.zeros(3))), images)
    assert torch.equal(images_of({"image": images}), images)
    with pytest.raises(TypeError, match="RGB tensor"):
        images_of("not a batch")


@pytest.mark.parametrize("head", ["classification", "regression"])
def test_heads_and_losses(head: str) -> None:
    module = ColorizationModule(head=head, grid_size=6).eval()
    batch = module.prepare_batch(torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8))
    result = module.compute_loss(batch)
    loss, output, predicted = result.loss, result.output, result.predicted_bins
    if head == "classification":
        assert output.shape == (2, 36, 8, 8)
        assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(output, batch["bins"]).item())
        assert torch.equal(predicted, output.argmax(dim=1))
        assert module.color_table is not None
        module.train()  # the fused training loss: no logits, the same loss and argmax
        logits = module(batch["l"])
        result = module.compute_loss(batch)
        loss, output, predicted = result.loss, result.output, result.predicted_bins
        assert output is None and torch.equal(predicted, logits.argmax(dim=1))
        assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, batch["bins"]).item(), rel=1e-5)
    else:
        assert output.shape == (2, 2, 8, 8)
        assert loss.item() == pytest.approx(((output - normalize_ab(batch["ab"])) ** 2).mean().item(), rel=1e-5)
        assert module.color_table is None
    rgb = module.net.colorize(batch["l"], [0.0, 1.0])
    assert rgb.shape == (2, 2, 3, 8, 8) and 0 <= rgb.min() and rgb.max() <= 1


@pytest.mark.parametrize(("name", "kind"), [("adam", torch.optim.Adam), ("rmsprop", torch.optim.RMSprop)])
def test_optimizer_is_chosen_in_the_config(name: str, kind: type) -> None:
    optimizer = ColorizationModule(optimizer=name, lr=3e-4).configure_optimizers()
    assert isinstance(optimizer, kind) and optimizer.defaults["lr"] == 3e-4


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="head"):
        ColorizationModule(head="gan")
    with pytest.raises(ValueError, match="optimizer"):
        ColorizationModule(optimizer="sgd")


def test_hyperparameters_are_saved() -> None:
    module = ColorizationModule(widths=None, base_width=16, depth=3, width_divider=2, grid_size=6)
    assert module.hparams.widths == [8, 16, 32]
    assert module.hparams.grid_size == 6 and module.hparams.head == "classification"


def test_fit_logs_metrics_under_stage_names(tmp_path: Path) -> None:
    _, _, trainer = fitted_module(tmp_path)
    metrics = set(trainer.callback_metrics)
    assert {"train/loss_step", "train/loss_epoch", "train/acc", "val/loss", "val/acc", "val/acc_top5", "val/psnr"} <= metrics
    results = trainer.validate(trainer.lightning_module, datamodule=trainer.datamodule, verbose=False)
    assert 0.0 <= results[0]["val/acc"] <= results[0]["val/acc_top5"] <= 1.0


def test_predict_gives_one_colorized_item_per_image_named_by_its_index(tmp_path: Path) -> None:
    """A DataModule's images come back as photos do (one result type): uint8 RGB per temperature."""
    module, datamodule, trainer = fitted_module(tmp_path, predict_temperatures=[0.0, 0.8, 1.0])
    predictions = [item for batch in trainer.predict(module, datamodule=datamodule) for item in batch]
    assert all(isinstance(item, ColorizedPhoto) for item in predictions)
    assert [item.item.path for item in predictions] == [f"0-{i:06d}" for i in range(len(datamodule.val_set))]
    first = predictions[0]
    assert first.temperatures == [0.0, 0.8, 1.0] and [image.dtype for image in first.images] == [torch.uint8] * 3
    l_norm = module.eval().prepare_batch(datamodule.val_set[0][None])["l"]
    expected = module.net.colorize(l_norm, [0.8])[0, 0].mul(255).round().to(torch.uint8)
    assert torch.equal(first.images[1], expected)


def test_checkpoint_restores_weights_and_table_exactly(tmp_path: Path) -> None:
    module = ColorizationModule()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)
    trainer = quick_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1, enable_checkpointing=True)
    trainer.callbacks.append(checkpoint)
    trainer.fit(module, tiny_toyshapes())
    path = Path(checkpoint.last_model_path)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code in our checkpoints
    assert bool(raw["state_dict"]["net.color_table.built"])
    restored = ColorizationModule.load_from_checkpoint(path, map_location="cpu").eval()
    module = module.eval()
    for name, value in module.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value), name
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    l_norm = module.prepare_batch(images)["l"]
    assert torch.equal(module.net.colorize(l_norm, [0.8]), restored.net.colorize(l_norm, [0.8]))


def test_a_checkpoint_from_before_the_network_held_its_buffers_loads_the_same(tmp_path: Path) -> None:
    """Checkpoints written before ColorizationNet kept the table and the bin classes at the top
    level and may lack train_image_size; they load into the same model (values hand-placed)."""
    module = ColorizationModule(grid_size=6).eval()
    module.color_table.mode_ab.uniform_(-50, 50)
    module.color_table.built.fill_(True)
    module.net.train_image_size.fill_(48)
    module.net.class_of_bin[3] = 4
    old_style = {key.removeprefix("net.") if key.startswith(("net.color_table.", "net.class_of_bin")) else key: value
                 for key, value in module.state_dict().items() if key != "net.train_image_size"}  # fmt: skip
    assert "color_table.mode_ab" in old_style and "net.color_table.mode_ab" not in old_style
    checkpoint = {"state_dict": old_style}
    restored = ColorizationModule(grid_size=6).eval()
    restored.on_load_checkpoint(checkpoint)
    restored.load_state_dict(checkpoint["state_dict"])
    assert torch.equal(restored.color_table.mode_ab, module.color_table.mode_ab)
    assert int(restored.net.class_of_bin[3]) == 4 and int(restored.net.train_image_size) == 0


def test_learning_rate_schedules(tmp_path: Path) -> None:
    module = ColorizationModule(lr_schedule="onecycle", lr=1e-2)
    trainer = quick_trainer(tmp_path, max_epochs=2, limit_train_batches=2, limit_val_batches=0)
    trainer.fit(module, tiny_toyshapes())
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR) and scheduler.total_steps == 4


def test_cosine_schedule_follows_the_closed_form(tmp_path: Path) -> None:
    """lr at step k of n is lr / 2 * (1 + cos(pi * k / n)), stepped per batch."""

    class RecordLr(Callback):
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def on_train_batch_start(self, trainer, *args) -> None:
            self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    record = RecordLr()
    trainer = quick_trainer(tmp_path, max_epochs=2, limit_train_batches=3, limit_val_batches=0, callbacks=[ColorTableBuilder(), record])
    trainer.fit(ColorizationModule(lr_schedule="cosine", lr=1e-2), tiny_toyshapes())
    expected = [1e-2 / 2 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    assert record.lrs == pytest.approx(expected, rel=1e-6)


def test_weight_decay_shrinks_weights_without_a_loss_gradient() -> None:
    """Adam's first step with zero gradients moves each weight by lr * g / (|g| + eps), g = decay * weight."""
    lr, decay = 1e-3, 0.1
    for weight_decay in (0.0, decay):
        module = ColorizationModule(lr=lr, weight_decay=weight_decay)
        optimizer = module.configure_optimizers()
        assert optimizer.param_groups[0]["weight_decay"] == weight_decay
        before = [p.detach().clone() for p in module.parameters()]
        for p in module.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
        for old, new in zip(before, module.parameters()):
            g = weight_decay * old
            torch.testing.assert_close(new.detach(), old - lr * g / (g.abs() + 1e-8))
        if weight_decay:
            assert sum(p.norm() ** 2 for p in module.parameters()) < sum(p.norm() ** 2 for p in before)
