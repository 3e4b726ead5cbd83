"""Global hints (issue 30): a reference photo's or a palette's color distribution at the model's
bins, the vector the network takes, its simulation while training, and the model that follows it.
Oracles: skimage's Lab, a loop over bin centres for the nearest bin, and the Gaussian smoothing
written out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from lit_colorize import ColorizationModule, Colorizer
from lit_colorize.cli import main
from lit_colorize.colorizer import module_from_checkpoint
from lit_colorize.errors import ConfigError
from lit_colorize.global_hints import (
    CHROMA_SCALE,
    GlobalHint,
    GlobalHintError,
    GlobalHintSampling,
    ab_distribution,
    global_hint_vector,
    palette_distribution,
    reference_distribution,
    sample_global_hints,
)
from tests.conftest import requires_cuda
from tests.helpers import fitted_module, no_device_waits

GRID = 18
SIGMA = 5.0
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "lit_colorize" / "weights"


def centres(grid: int = GRID) -> list[tuple[float, float]]:
    """Bin centres in ab units, flat index a * grid + b, computed from the grid's definition."""
    step = 255.0 / grid
    return [((i + 0.5) * step - 128.0, (j + 0.5) * step - 128.0) for i in range(grid) for j in range(grid)]


def nearest_bin(a: float, b: float, table: list[tuple[float, float]]) -> int:
    return min(range(len(table)), key=lambda q: (table[q][0] - a) ** 2 + (table[q][1] - b) ** 2)


def smoothed(weights: np.ndarray, table: list[tuple[float, float]]) -> np.ndarray:
    """Normalize, spread each bin's weight by exp(-d^2 / 2 sigma^2) over the bins, normalize."""
    p = weights / weights.sum()
    out = np.zeros(len(table))
    for q, (qa, qb) in enumerate(table):
        for r, (ra, rb) in enumerate(table):
            if p[r]:
                out[q] += p[r] * math.exp(-((qa - ra) ** 2 + (qb - rb) ** 2) / (2 * SIGMA**2))
    return out / out.sum()


def oracle_of_ab(ab_pixels: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(distribution, mean chroma) of ab pixels (N, 2), by loops."""
    table = centres()
    weights = np.ones(len(ab_pixels)) if weights is None else weights
    counts = np.zeros(len(table))
    for (a, b), w in zip(ab_pixels, weights):
        counts[nearest_bin(a, b, table)] += w
    chroma = sum(w * math.hypot(a, b) for (a, b), w in zip(ab_pixels, weights)) / weights.sum()
    return smoothed(counts, table), chroma


def random_photo(height: int, width: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, height, width), dtype=np.uint8))


@pytest.mark.parametrize("budget", [1 << 20, 40], ids=["one-strip", "strips-of-rows"])
def test_reference_distribution_matches_a_numpy_oracle(budget: int) -> None:
    """A reference of any size (13 x 17 here, in strips of a few rows or whole): every pixel's
    nearest bin (skimage's Lab), counted, smoothed by hand; the mean chroma."""
    photo = random_photo(13, 17, seed=3)
    lab = rgb2lab(photo.permute(1, 2, 0).numpy())
    expected, chroma = oracle_of_ab(lab[..., 1:].reshape(-1, 2))
    hint = reference_distribution(photo, GRID, budget=budget)
    np.testing.assert_allclose(hint.distribution.numpy(), expected, atol=1e-6)
    assert hint.saturation.item() == pytest.approx(chroma, abs=0.02)


def test_ab_distribution_matches_the_oracle_with_a_region_weight() -> None:
    generator = torch.Generator().manual_seed(0)
    ab = torch.rand(2, 2, 6, 5, generator=generator) * 220 - 110
    weight = (torch.rand(2, 6, 5, generator=generator) > 0.5).float()
    got = ab_distribution(ab, GRID, weight=weight)
    for i in range(2):
        pixels = ab[i].permute(1, 2, 0).reshape(-1, 2).double().numpy()
        expected, _ = oracle_of_ab(pixels, weight[i].reshape(-1).double().numpy())
        np.testing.assert_allclose(got[i].numpy(), expected, atol=1e-6)


def test_palette_distribution_matches_a_numpy_oracle() -> None:
    """Each color's ab at its own L (skimage), its weight at its nearest bin, smoothed by hand;
    the saturation is the weighted mean chroma. A 0 weight drops its color."""
    colors, weights = ["#2a6fdb", "C8A27A", (40, 160, 60), "#ff0000"], [3.0, 1, 2, 0]
    rgb = np.array([[0x2A, 0x6F, 0xDB], [0xC8, 0xA2, 0x7A], [40, 160, 60], [255, 0, 0]], dtype=np.uint8)
    ab = rgb2lab(rgb[None])[0, :, 1:]
    expected, chroma = oracle_of_ab(ab, np.array(weights, dtype=float))
    hint = palette_distribution(colors, weights, GRID)
    np.testing.assert_allclose(hint.distribution.numpy(), expected, atol=1e-6)
    assert hint.saturation.item() == pytest.approx(chroma, abs=0.02)
    one = palette_distribution(["#2a6fdb"], grid_size=GRID).distribution
    assert int(one.argmax()) == nearest_bin(*ab[0], centres()) and one.max() > 0.9  # one color: one bin, lightly smoothed


@pytest.mark.parametrize(
    ("colors", "weights", "message"),
    [
        (["#12345"], None, "palette color 1: color '#12345' is not #rrggbb"),
        (["#2a6fdb", "red"], None, "palette color 2"),
        ([], None, "palette must be a list of 1 to 256 colors"),
        ("#2a6fdb", None, "palette must be a list"),
        (["#2a6fdb", "#c8a27a"], [1.0], "weights must be a list of 2 numbers"),
        (["#2a6fdb"], [-1.0], "palette weight 1 must be a finite number, 0 or more"),
        (["#2a6fdb"], [float("nan")], "palette weight 1 must be a finite number"),
        (["#2a6fdb"], [True], "palette weight 1"),
        (["#2a6fdb"], [10**400], "palette weight 1 must be a finite number"),
        (["#2a6fdb", "#c8a27a"], [1e308, 1e308], "nor sum past a float's range"),
        (["#2a6fdb", "#c8a27a"], [0, 0], "must not all be 0"),
    ],
)
def test_a_bad_palette_is_refused_in_one_line(colors: object, weights: object, message: str) -> None:
    with pytest.raises(GlobalHintError, match=message.replace("(", r"\(")) as caught:
        palette_distribution(colors, weights, GRID)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_the_vector_holds_distribution_saturation_and_the_none_flag() -> None:
    none = global_hint_vector(None, GRID)
    assert none.shape == (GRID * GRID + 2,) and none[-1] == 1 and not none[:-1].any()
    hint = palette_distribution(["#2a6fdb"], grid_size=GRID)
    vector = global_hint_vector(hint, GRID)
    assert vector[-1] == 0 and vector[:-2].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert vector[-2].item() == pytest.approx(hint.saturation.item() / CHROMA_SCALE)
    torch.testing.assert_close(vector[:-2], hint.distribution)


def test_simulation_gives_the_truths_own_distribution_or_none() -> None:
    """Probability 1, no sub-regions: every image gets its own whole distribution (the oracle's);
    probability 0: every image gets the none vector."""
    generator = torch.Generator().manual_seed(1)
    ab = torch.rand(3, 2, 5, 7, generator=generator) * 200 - 100
    always = sample_global_hints(ab, GRID, GlobalHintSampling(probability=1.0, region_share=0.0), generator)
    for i in range(3):
        expected, chroma = oracle_of_ab(ab[i].permute(1, 2, 0).reshape(-1, 2).double().numpy())
        np.testing.assert_allclose(always[i, :-2].numpy(), expected, atol=1e-6)
        assert always[i, -2].item() == pytest.approx(chroma / CHROMA_SCALE, abs=1e-5) and always[i, -1] == 0
    never = sample_global_hints(ab, GRID, GlobalHintSampling(probability=0.0), generator)
    torch.testing.assert_close(never, global_hint_vector(None, GRID).expand(3, -1))


def test_simulation_statistics_none_share_and_sub_regions() -> None:
    """Over 4000 draws on an 8 x 8 image whose pixels all sit in bins two apart (so the smoothed
    distribution shows which pixels were counted): half get no hint; half of the others a
    sub-rectangle, its sides floor(u * 8) with u ~ U[0.25, 1] (2..7, mean 4.5), placed uniformly."""
    table = centres()
    cells = [(2 * i, 2 * j) for i in range(8) for j in range(8)]
    ab = torch.tensor([table[i * GRID + j] for i, j in cells]).T.reshape(1, 2, 8, 8).expand(4000, -1, -1, -1)
    vectors = sample_global_hints(ab, GRID, GlobalHintSampling(), torch.Generator().manual_seed(2))
    given = vectors[:, -1] == 0
    assert given.float().mean().item() == pytest.approx(0.5, abs=0.03)
    pixel_bins = torch.tensor([i * GRID + j for i, j in cells])
    counted = (vectors[given][:, pixel_bins] > 1e-3).reshape(-1, 8, 8)
    rows, cols = counted.any(2), counted.any(1)
    assert torch.equal(counted, rows[:, :, None] & cols[:, None, :])  # a rectangle
    heights, widths = rows.sum(1), cols.sum(1)
    whole = (heights == 8) & (widths == 8)
    assert whole.float().mean().item() == pytest.approx(0.5, abs=0.04)
    part = ~whole
    assert int(heights[part].min()) == 2 and int(heights[part].max()) == 7
    assert heights[part].float().mean().item() == pytest.approx(4.5, abs=0.15)
    assert widths[part].float().mean().item() == pytest.approx(4.5, abs=0.15)
    tops = rows.float().argmax(1)[part & (heights == 2)]  # 7 places for a 2-row region: mean 3
    assert tops.float().mean().item() == pytest.approx(3.0, abs=0.35) and set(tops.tolist()) == set(range(7))
    assert set(rows.float().argmax(1)[part].tolist()) <= set(range(7))
    # the saturation is the counted pixels' own mean chroma
    first = int(torch.nonzero(part)[0])
    mask = counted[first].reshape(-1).numpy()
    chroma = np.hypot(*ab[0].reshape(2, -1).numpy())[mask].mean()
    assert vectors[given][first, -2].item() == pytest.approx(chroma / CHROMA_SCALE, abs=1e-5)


@pytest.mark.parametrize(
    "options", [{"probability": 1.5}, {"region_share": -0.1}, {"min_region_side": 0.0}, {"probability": float("nan")}]
)
def test_bad_sampling_options_are_config_errors(options: dict) -> None:
    with pytest.raises(ConfigError, match="global hint"):
        GlobalHintSampling(**options)
    with pytest.raises(ConfigError, match="global hint probability"):
        ColorizationModule(global_hints=True, global_hint_probability=2.0)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_network_adds_a_small_mlp_and_sees_none_without_a_hint() -> None:
    """Hand count for widths 8-16-32, 324 bins: (326 * 32 + 32) + (32 * 32 + 32) = 11,520 weights;
    without global hints the model is unchanged (35,748). Given nothing, the network sees the none
    vector; a distribution changes the output of even an untrained network."""
    plain, globally = ColorizationModule(), ColorizationModule(global_hints=True)
    assert parameter_count(plain) == 35_748 and parameter_count(globally) - parameter_count(plain) == 11_520
    torch.manual_seed(0)
    net = ColorizationModule(global_hints=True, hints=True, global_context=True, hint_free_context=True).net.eval()
    l_norm = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(l_norm), net(l_norm, global_hint_vector(None, GRID)))
        hinted = net(l_norm, global_hint_vector(palette_distribution(["#2a6fdb"], grid_size=GRID), GRID))
    assert not torch.allclose(hinted, net(l_norm))
    with pytest.raises(ValueError, match="trained without global hints"):
        plain.net(l_norm, global_hint_vector(None, GRID))
    with pytest.raises(ValueError, match="a global hint is"):
        net(l_norm, torch.zeros(GRID * GRID))


@pytest.mark.parametrize("hints", [False, True], ids=["global-only", "with-local-hints"])
def test_a_global_hints_model_trains_and_takes_a_reference_or_palette(tmp_path: Path, hints: bool) -> None:
    """The Lightning loop with simulated global hints (and local ones), then a checkpoint's
    Colorizer: a reference as a path, a PIL image or an array gives one result; palettes differ;
    one palette serves a list of photos."""
    extra = {"hints": True, "global_context": True, "hint_free_context": True} if hints else {}
    module, _, trainer = fitted_module(tmp_path, widths=(8, 16, 32), global_hints=True, **extra)
    assert "global_hint" not in module.prepare_batch(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))  # evaluation: none
    path = tmp_path / "global.ckpt"
    trainer.save_checkpoint(path)
    colorizer = Colorizer.from_checkpoint(path)
    photo = random_photo(37, 51, seed=4)
    reference = random_photo(60, 23, seed=5).permute(1, 2, 0).numpy()
    Image.fromarray(reference).save(tmp_path / "reference.png")
    by_path = colorizer.colorize(photo, reference=str(tmp_path / "reference.png"))
    assert by_path.shape == (3, 37, 51)
    assert torch.equal(by_path, colorizer.colorize(photo, reference=Image.fromarray(reference)))
    assert torch.equal(by_path, colorizer.colorize(photo, reference=reference))
    blue = colorizer.colorize(photo, palette=["#2a6fdb"])
    net, l_norm = colorizer.module.net, torch.rand(1, 1, 32, 32)
    with torch.no_grad():  # two steps of training leave most argmaxes alone; the logits differ
        assert not torch.allclose(*(net(l_norm, colorizer.global_hint(palette=[c])) for c in ("#2a6fdb", "#c8a27a")))
    pair = colorizer.colorize([photo, photo], palette=["#2a6fdb"])
    assert torch.equal(pair[0], blue) and torch.equal(pair[1], blue)


def test_simulating_global_hints_never_reads_a_device_value_on_the_host(tmp_path: Path) -> None:
    """The draw, the sub-rectangles and the histograms stay on the device (tests/test_host_sync.py's probe)."""
    from tests.helpers import quick_trainer, tiny_toyshapes
    from tests.test_host_sync import ProbedModule

    module = ProbedModule(widths=(8, 16, 32), global_hints=True, hints=True)
    trainer = quick_trainer(tmp_path, limit_train_batches=3, limit_val_batches=0, num_sanity_val_steps=0)
    try:
        trainer.fit(module, tiny_toyshapes())
    finally:
        module.probe.stop()
    assert module.probed_steps == 3 and module.probe.reads == []


@requires_cuda
def test_simulating_global_hints_on_the_gpu_never_waits_and_matches_the_cpu() -> None:
    """Drawn with a CUDA generator under torch's sync debug mode; whole-image hints equal the CPU's."""
    ab = (torch.rand(8, 2, 32, 32, generator=torch.Generator().manual_seed(3)) * 200 - 100).cuda()
    with no_device_waits():
        drawn = sample_global_hints(ab, GRID, GlobalHintSampling(), torch.Generator("cuda").manual_seed(0))
        whole = sample_global_hints(ab, GRID, GlobalHintSampling(probability=1.0, region_share=0.0))
    assert drawn.shape == (8, GRID * GRID + 2)
    expected = sample_global_hints(ab.cpu(), GRID, GlobalHintSampling(probability=1.0, region_share=0.0))
    torch.testing.assert_close(whole.cpu(), expected, atol=1e-6, rtol=1e-5)


def test_a_model_without_global_hints_refuses_a_reference_in_one_line() -> None:
    module = ColorizationModule()
    module.net.color_table.built.fill_(True)
    colorizer = Colorizer(module)
    photo = random_photo(20, 20, seed=6)
    for given in ({"reference": photo}, {"palette": ["#2a6fdb"]}):
        with pytest.raises(GlobalHintError, match=r"trained without global hints \(global_hints: false\)") as caught:
            colorizer.colorize(photo, **given)
        assert "\n" not in str(caught.value)
    with pytest.raises(GlobalHintError, match="not both"):
        colorizer.colorize(photo, reference=photo, palette=["#2a6fdb"])
    with pytest.raises(GlobalHintError, match="without a palette"):
        colorizer.colorize(photo, weights=[1.0])
    with pytest.raises(ValueError, match="without global hints"):
        module.net.colorize_photo(photo, global_hint=global_hint_vector(None, GRID))


def test_predict_gives_every_photo_the_reference_and_refuses_it_plainly(tmp_path: Path, checkpoint: Path, capsys) -> None:
    """``--data.reference FILE``: every photo is colorized as ``Colorizer.colorize(photo,
    reference=FILE)`` colorizes it; a model without global hints fails each photo alone, in one
    line; an unreadable reference stops the run before any photo, naming it."""
    from tests.test_predict_faults import files_under, make_photos, predict_args, run_in_process

    _, _, trainer = fitted_module(tmp_path / "run", widths=(8, 16, 32), global_hints=True)
    global_checkpoint = tmp_path / "global.ckpt"
    trainer.save_checkpoint(global_checkpoint)
    photos = make_photos(tmp_path / "in", ["a.png", "b.png"])
    reference = tmp_path / "reference.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (30, 90, 3), dtype=np.uint8)).save(reference)
    out = tmp_path / "out"
    assert run_in_process(predict_args(global_checkpoint, photos, out, "--data.reference", str(reference))) == 0
    assert files_under(out) == {"a_colorized_T0.8.png", "b_colorized_T0.8.png"}
    colorizer = Colorizer.from_checkpoint(global_checkpoint)
    for photo in photos:
        expected = np.asarray(colorizer.colorize(str(photo), reference=str(reference)))
        assert np.array_equal(np.asarray(Image.open(out / f"{photo.stem}_colorized_T0.8.png")), expected)
    capsys.readouterr()
    assert run_in_process(predict_args(checkpoint, photos[:1], tmp_path / "plain", "--data.reference", str(reference))) == 1
    assert f"FAILED {photos[0]}: reference photo {reference} given, but this model was trained without global hints" in capsys.readouterr().out
    missing = tmp_path / "missing.jpg"
    with pytest.raises(SystemExit) as stopped:
        main(predict_args(global_checkpoint, photos, tmp_path / "none", "--data.reference", str(missing)))
    assert f"--data.reference: cannot read image {missing}" in str(stopped.value.code) and "\n" not in str(stopped.value.code)
    assert not (tmp_path / "none").exists() or not files_under(tmp_path / "none")


def test_a_video_given_a_reference_carries_it(tmp_path: Path) -> None:
    """A reference applies to videos too: the item carries it to the writer (tests/test_predict_global_hints.py
    checks what is written)."""
    from lit_colorize.photo_files import PhotoDataset

    video, reference = tmp_path / "clip.mp4", tmp_path / "reference.png"
    video.write_bytes(b"")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(reference)
    (item,) = PhotoDataset([video], reference=reference)
    assert item.is_video and item.error is None and item.global_hint.reference == str(reference)
    (plain,) = PhotoDataset([video])
    assert plain.error is None and plain.global_hint is None


@pytest.mark.parametrize("path", sorted(WEIGHTS_DIR.glob("*.ckpt")), ids=lambda p: p.stem)
def test_shipped_checkpoints_load_without_global_hints(path: Path) -> None:
    """Every shipped model loads strictly as it was: no global hint input, no new weights
    (its predictions are checked against recorded numbers in test_pretrained)."""
    module = module_from_checkpoint(path)
    assert not module.hparams.get("global_hints", False) and module.net.global_hint is None
    assert not any("global_hint" in key for key in module.state_dict())


def flat_color_images(count: int, seed: int, size: int = 16) -> torch.Tensor:
    """Uniform images, each one random color (L* 35..80, ab in a disk of radius 80, clipped to
    sRGB): their gray image tells little of the color; a global hint tells all of it."""
    rng = np.random.default_rng(seed)
    hue, radius = rng.uniform(0, 2 * np.pi, count), 80 * np.sqrt(rng.uniform(0, 1, count))
    lab = np.stack([rng.uniform(35, 80, count), radius * np.cos(hue), radius * np.sin(hue)], axis=1)
    rgb = np.round(lab2rgb(lab[:, None, :])[:, 0] * 255).astype(np.uint8)
    return torch.from_numpy(rgb)[:, :, None, None].expand(-1, -1, size, size).contiguous()


@pytest.mark.slow
def test_a_palette_of_one_color_pushes_a_flat_gray_image_toward_it() -> None:
    """A tiny global-hints model trained on flat random colors (the hint given half the time, as
    simulated) learns to follow it: a flat gray photo colorized with a one-color palette comes out
    near that color's ab; without a hint it stays near gray."""
    torch.manual_seed(0)
    module = ColorizationModule(head="regression", global_hints=True, widths=(8, 16))
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    train = flat_color_images(4096, seed=1)
    module.train()
    for step in range(500):
        start = (step * 32) % len(train)
        loss = module.compute_loss(module.prepare_training_batch(train[start : start + 32], None)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    colorizer = Colorizer(module.eval())
    gray = torch.full((3, 24, 40), 140, dtype=torch.uint8)
    for color in ("#2a6fdb", "#3c9a3c", "#d03030"):
        target = torch.tensor(rgb2lab(np.array([[[int(color[i : i + 2], 16) for i in (1, 3, 5)]]], dtype=np.uint8))[0, 0, 1:])
        distances = []
        for given in ({"palette": [color]}, {}):
            out = colorizer.colorize(gray, **given).permute(1, 2, 0).numpy()
            distances.append(float(np.linalg.norm(rgb2lab(out)[..., 1:].reshape(-1, 2).mean(0) - target.numpy())))
        print(f"{color}: output ab {distances[0]:.1f} from the palette's with it, {distances[1]:.1f} without")
        assert distances[1] > 40 and distances[0] < 0.4 * distances[1]
