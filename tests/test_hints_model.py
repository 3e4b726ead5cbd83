"""``hints: true`` on ColorizationModule (user-guided colorization, Zhang et al. 2017): 4 input
channels, simulated hints while training, automatic mode without hints; ``hints: false`` is
today's model, parameter for parameter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lit_colorize import ColorizationModule, Colorizer
from lit_colorize.hints import place_hints
from tests.helpers import fitted_module


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_without_hints_the_model_is_unchanged() -> None:
    """Same keys, shapes and parameter count as before the option existed (35,748 for
    8-16-32 with 324 bins: the README's hand count)."""
    default, explicit = ColorizationModule(), ColorizationModule(hints=False)
    assert parameter_count(default) == parameter_count(explicit) == 35_748
    assert {k: v.shape for k, v in default.state_dict().items()} == {k: v.shape for k, v in explicit.state_dict().items()}
    assert explicit.net.encoders[0][0].in_channels == 1


@pytest.mark.parametrize("head", ["classification", "regression"])
def test_hints_add_three_input_channels_to_the_first_convolution_only(head: str) -> None:
    """Hand count: the first 3x3 convolution gains 3 input channels, 3 * 8 * 3 * 3 = 216 weights."""
    plain, guided = ColorizationModule(head=head), ColorizationModule(head=head, hints=True)
    assert parameter_count(guided) - parameter_count(plain) == 3 * 8 * 3 * 3
    assert guided.net.encoders[0][0].in_channels == 4


def test_a_guided_model_without_hints_sees_no_hint_anywhere() -> None:
    torch.manual_seed(0)
    model = ColorizationModule(hints=True).eval()
    l_norm = torch.rand(2, 1, 32, 32)
    no_hints = torch.zeros(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(l_norm), model(torch.cat([l_norm, no_hints], dim=1)))
        hint_ab, mask = place_hints(32, 32, [(10, 12, 60.0, -40.0, 5)])
        hinted = model(torch.cat([l_norm, torch.cat([hint_ab, mask], 1).expand(2, -1, -1, -1)], dim=1))
    assert not torch.allclose(hinted, model(l_norm))  # an untrained network already reacts to a hint
    with pytest.raises(ValueError, match="trained without hints"):
        ColorizationModule().net.network_input(l_norm, no_hints)


def test_training_batches_carry_simulated_hints_and_the_loss_depends_on_them() -> None:
    torch.manual_seed(0)
    model = ColorizationModule(hints=True, fused_head_loss=False)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    batch = model.prepare_training_batch(images, None)
    hints = batch["hints"]
    assert hints.shape == (4, 3, 32, 32)
    mask = hints[:, 2:]
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert bool((hints[:, :2][mask.expand(-1, 2, -1, -1) == 0] == 0).all())  # no hint: ab 0
    model.train()
    with_hints = model.compute_loss(batch).loss
    without = model.compute_loss({k: v for k, v in batch.items() if k != "hints"}).loss
    assert torch.isfinite(with_hints) and with_hints != without
    assert "hints" not in model.prepare_batch(images)  # validation and test: automatic mode


def test_a_guided_model_trains_and_colorizes_photos_without_hints(tmp_path: Path) -> None:
    """The Lightning loop with simulated hints, then the automatic paths of a guided checkpoint."""
    module, _, trainer = fitted_module(tmp_path, widths=(8, 16, 32), hints=True)
    path = tmp_path / "guided.ckpt"
    trainer.save_checkpoint(path)
    colorizer = Colorizer.from_checkpoint(path)
    assert colorizer.module.net.hints and colorizer.module.hparams.hint_location == "uniform"
    photo = torch.randint(0, 256, (3, 37, 51), dtype=torch.uint8)
    assert colorizer.colorize(photo).shape == (3, 37, 51)


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [None, 0.8], ids=["T-input", "T-fixed"])
def test_onnx_export_of_a_guided_model_takes_the_hints(tmp_path: Path, temperature: float | None) -> None:
    """The graph's inputs are l, hints (and temperature); onnxruntime agrees with PyTorch with
    hints and without (all-zero hint channels)."""
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is a dev dependency: pip install -e .[dev]")
    import numpy as np

    from lit_colorize.export import export_onnx

    torch.manual_seed(0)
    module = ColorizationModule(hints=True, widths=(8, 16, 32)).eval()
    module.net.color_table.built.fill_(True)
    path = export_onnx(module, tmp_path / "guided.onnx", temperature)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["l", "hints"] + (["temperature"] if temperature is None else [])
    l_norm = torch.rand(2, 1, 40, 56)
    hint_ab, mask = place_hints(40, 56, [(10, 12, 60.0, -40.0, 5), (30, 40, -20.0, 50.0, 3)])
    for hints in (torch.cat([hint_ab, mask], 1).expand(2, -1, -1, -1), torch.zeros(2, 3, 40, 56)):
        feeds = {"l": l_norm.numpy(), "hints": hints.contiguous().numpy()}
        t = 0.8 if temperature is None else temperature
        if temperature is None:
            feeds["temperature"] = np.array(t, dtype=np.float32)
        (ab,) = session.run(None, feeds)
        expected = module.net.predict_ab(l_norm, [t], hints)[0].numpy()
        np.testing.assert_allclose(ab, expected, atol=1e-3, rtol=0)


def two_color_squares(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dark gray 32x32 images, each with a lighter square (L* 70 on 40: its outline shows in
    the gray image) colored red-ish or green-ish at that same L*: the gray image cannot tell
    which, a hint can. Returns uint8 RGB (N, 3, 32, 32) and the squares' masks (N, 32, 32)."""
    from skimage.color import lab2rgb

    rng = np.random.default_rng(seed)
    colors = [np.round(lab2rgb(np.array([[[70.0, a, 0.0]]]))[0, 0] * 255) for a in (35.0, -35.0)]
    background = np.round(lab2rgb(np.array([[[40.0, 0.0, 0.0]]]))[0, 0] * 255)
    images = np.tile(background, (count, 32, 32, 1))
    masks = np.zeros((count, 32, 32), bool)
    for i in range(count):
        side = rng.integers(10, 15)
        top, left = rng.integers(0, 32 - side, size=2)
        masks[i, top : top + side, left : left + side] = True
        images[i][masks[i]] = colors[rng.integers(2)]
    return torch.from_numpy(images.astype(np.uint8)).permute(0, 3, 1, 2), torch.from_numpy(masks)


@pytest.mark.slow
def test_a_guided_model_learns_to_follow_a_hint() -> None:
    """Trained on simulated hints only, a model learns to carry a hint across the region it
    falls in: on new images, with one hint at each square's centre, the ab error inside the
    squares is a fraction of what it is without (where the best guess is the mean of the two)."""
    torch.manual_seed(0)
    module = ColorizationModule(head="regression", hints=True, widths=(16, 32, 64), hint_stop_probability=0.0625)
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    train, _ = two_color_squares(2048, seed=1)
    module.train()
    for step in range(1500):
        start = (step * 32) % 2048
        loss = module.compute_loss(module.prepare_training_batch(train[start : start + 32], None)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    images, masks = two_color_squares(64, seed=2)
    batch = module.prepare_batch(images)
    rows = []
    for i in range(64):
        ys, xs = torch.nonzero(masks[i], as_tuple=True)
        y, x = int(ys.float().mean().round()), int(xs.float().mean().round())
        a, b = batch["ab"][i, :, y, x].tolist()
        hint_ab, mask = place_hints(32, 32, [(y, x, a, b, 3)])
        rows.append(torch.cat([hint_ab, mask], dim=1))
    with torch.no_grad():
        guided = module.net.predict_ab(batch["l"], [1.0], torch.cat(rows))[0]
        automatic = module.net.predict_ab(batch["l"], [1.0])[0]
    inside = masks[:, None].expand(-1, 2, -1, -1)
    error_guided = (guided - batch["ab"]).abs()[inside].mean()
    error_automatic = (automatic - batch["ab"]).abs()[inside].mean()
    print(f"mean |ab error| in the squares: with one hint {error_guided:.2f}, without {error_automatic:.2f}")
    assert error_automatic > 10  # the gray image really cannot tell the two colors apart
    assert error_guided < 0.3 * error_automatic
