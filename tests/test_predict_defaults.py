"""Each model's own rendering defaults (issue 27): the working size and decoding recorded in
its checkpoint are what predict, the Colorizer and video use when nothing is said; a
checkpoint without them renders as predict always did (mode-mean T=0.8, its training size);
explicit settings win."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lit_colorize import Colorizer
from lit_colorize.colorizer import module_from_checkpoint
from lit_colorize.errors import ConfigError
from lit_colorize.options import DecodingChoice, check_predict_decoding
from lit_colorize.pretrained import write_slim_checkpoint
from tests.test_predict import PREDICT_CONFIG, pixels, run_cli

OWN = {"name": "annealed_mean", "temperature": 0.38}


@pytest.fixture(scope="module")
def with_defaults(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's checkpoint with a recorded working size and decoding (hyperparameters only)."""
    path = tmp_path_factory.mktemp("defaults") / "own.ckpt"
    write_slim_checkpoint(checkpoint, path, {"predict_working_size": 48, "predict_decoding": OWN})
    return path


def photo() -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    blocks = torch.randint(0, 256, (3, 6, 8), generator=generator, dtype=torch.uint8)
    return blocks.repeat_interleave(20, 1).repeat_interleave(20, 2).contiguous()  # 120x160, hard edges


def test_an_old_checkpoint_falls_back_to_predicts_old_defaults(checkpoint: Path) -> None:
    net = module_from_checkpoint(checkpoint).net
    assert net.decodings_for(None) == [DecodingChoice("mode_mean", 0.8)]
    assert net.predict_short_side == int(net.train_image_size) == 32
    rgb = photo()
    default = Colorizer.from_checkpoint(checkpoint).colorize(rgb)
    assert torch.equal(default, net.colorize_photo(rgb, [0.8], 32)[0])  # guided upsampling, as every path now


def test_the_recorded_decoding_and_working_size_are_the_defaults(with_defaults: Path) -> None:
    net = module_from_checkpoint(with_defaults).net
    assert net.decodings_for(None) == [DecodingChoice("annealed_mean", 0.38)]
    assert net.predict_short_side == 48
    rgb = photo()
    colorizer = Colorizer.from_checkpoint(with_defaults)
    default = colorizer.colorize(rgb)
    assert torch.equal(default, net.colorize_photo(rgb, [DecodingChoice("annealed_mean", 0.38)], 48)[0])
    explicit = colorizer.colorize(rgb, temperature=0.38)  # the model's configured decoding (mode-mean) at 0.38
    assert torch.equal(explicit, net.colorize_photo(rgb, [DecodingChoice("mode_mean", 0.38)], 48)[0])
    assert not torch.equal(default, explicit)
    assert not torch.equal(Colorizer.from_checkpoint(with_defaults, working_size=32).colorize(rgb), default)


def test_bilinear_stays_available_and_differs_at_edges(with_defaults: Path) -> None:
    rgb = photo()
    guided = Colorizer.from_checkpoint(with_defaults).colorize(rgb)
    bilinear = Colorizer.from_checkpoint(with_defaults, upsampling="bilinear").colorize(rgb)
    assert guided.shape == bilinear.shape == rgb.shape
    assert not torch.equal(guided, bilinear)
    with pytest.raises(ConfigError, match="upsampling must be guided"):
        Colorizer.from_checkpoint(with_defaults, upsampling="nearest")


@pytest.mark.parametrize(
    "value",
    [{"name": "mode", "temperature": 0.3}, {"name": "annealed_mean"}, {"name": "annealed_mean", "temperature": -1}, "annealed_mean"],
)
def test_a_bad_recorded_decoding_is_named(value: object) -> None:
    with pytest.raises(ConfigError, match="predict_decoding"):
        check_predict_decoding(value)


@pytest.mark.slow
def test_predict_renders_the_recorded_decoding_by_default(tmp_path: Path, with_defaults: Path) -> None:
    """`temperatures: null` in configs/predict.yaml: one file, named by the model's own T, with
    the pixels of Colorizer's default; explicit temperatures behave as before."""
    source = tmp_path / "photo.png"
    Image.fromarray(photo().permute(1, 2, 0).numpy()).save(source)
    shutil.copy(PREDICT_CONFIG, tmp_path / "predict.yaml")
    result = run_cli("predict", "--config", "predict.yaml", "--ckpt_path", str(with_defaults), "--data.inputs", "[photo.png]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    written = sorted(p.name for p in (tmp_path / "colorized").iterdir())
    assert written == ["photo_colorized_T0.38.png"]
    expected = np.asarray(Colorizer.from_checkpoint(with_defaults).colorize(str(source)))
    np.testing.assert_array_equal(pixels(tmp_path / "colorized" / "photo_colorized_T0.38.png"), expected)
    result = run_cli(
        "predict", "--config", "predict.yaml", "--ckpt_path", str(with_defaults), "--data.inputs", "[photo.png]",
        "--writer.temperatures", "[0.8]", "--writer.upsampling", "bilinear", "--writer.output_dir", "explicit", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    expected = np.asarray(Colorizer.from_checkpoint(with_defaults, upsampling="bilinear").colorize(str(source), temperature=0.8))
    np.testing.assert_array_equal(pixels(tmp_path / "explicit" / "photo_colorized_T0.8.png"), expected)
    bad = run_cli("predict", "--config", "predict.yaml", "--data.inputs", "[photo.png]", "--writer.upsampling", "cubic", cwd=tmp_path)
    assert bad.returncode == 1 and "upsampling" in bad.stderr.strip().splitlines()[-1]
