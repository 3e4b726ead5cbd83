"""The Python API never gives silently wrong output; the README's ONNX example runs as written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lit_colorize import Colorizer, ColorizationModule
from lit_colorize.bins import MissingColorTableError
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def trained(checkpoint: Path) -> tuple[Colorizer, Path]:
    return Colorizer.from_checkpoint(checkpoint), checkpoint


def gradient(height: int = 24, width: int = 40, top: int = 65535) -> np.ndarray:
    """A gray ramp from 0 to ``top`` over the width, the same on every row."""
    return np.tile(np.linspace(0, top, width), (height, 1))


@pytest.mark.parametrize(
    "mode, values, suffix",
    [("I;16", gradient().astype(np.uint16), ".png"), ("I", gradient().astype(np.int32), ".tif"),
     ("F", gradient(top=1).astype(np.float32), ".tif")],
    ids=["I;16", "I", "F"],
)  # fmt: skip
def test_a_high_depth_pil_image_gives_what_its_file_gives(
    trained: tuple[Colorizer, Path], tmp_path: Path, mode: str, values: np.ndarray, suffix: str
) -> None:
    """Today a mode "I;16" image is clipped to white (255) before it is colorized."""
    colorizer, _ = trained
    image = Image.fromarray(values, mode=mode) if mode != "I;16" else Image.fromarray(values).convert("I;16")
    path = tmp_path / f"gray{suffix}"
    image.save(path)
    with Image.open(path) as opened:
        from_pil = np.asarray(colorizer.colorize(opened))
    from_path = np.asarray(colorizer.colorize(path))
    # The oracle: the ramp scaled to 8 bits by hand, as a plain gray uint8 array.
    top = 1.0 if mode == "F" else 65535.0
    by_hand = np.clip(np.round(values.astype(np.float64) / top * 255), 0, 255).astype(np.uint8)
    from_array = colorizer.colorize(by_hand)
    np.testing.assert_array_equal(from_pil, from_path)
    np.testing.assert_array_equal(from_pil, from_array)
    assert from_pil[:, :4].mean() < from_pil[:, -4:].mean() - 100  # dark to light, not all white


@pytest.mark.parametrize("temperature", [float("nan"), -1.0, float("inf"), 1e6])
def test_temperature_must_be_finite_and_in_range(trained: tuple[Colorizer, Path], temperature: float) -> None:
    """Today T=nan gives an all-black image and -1 or 1e6 are accepted."""
    colorizer, _ = trained
    with pytest.raises(ValueError, match="temperature must be a finite number between 0"):
        colorizer.colorize(np.zeros((8, 8), dtype=np.uint8), temperature=temperature)


def test_the_temperature_range_ends_are_accepted(trained: tuple[Colorizer, Path]) -> None:
    colorizer, _ = trained
    gray = np.full((8, 8), 128, dtype=np.uint8)
    assert colorizer.colorize(gray, temperature=0).shape == colorizer.colorize(gray, temperature=10).shape == (8, 8, 3)


@pytest.mark.parametrize("kind", ["numpy", "tensor"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 255.0])
def test_non_finite_or_wrongly_scaled_float_input_is_refused(trained: tuple[Colorizer, Path], kind: str, bad: float) -> None:
    """Today NaN is clamped silently (to black), and a 0..255 float image to white."""
    colorizer, _ = trained
    image = np.full((8, 8, 3), 0.5, dtype=np.float32)
    image[2, 3, 1] = bad
    given = image if kind == "numpy" else torch.from_numpy(image).permute(2, 0, 1)
    with pytest.raises(ValueError, match="NaN or infinite" if bad != 255.0 else r"must lie in \[0, 1\]"):
        colorizer.colorize(given)


def test_resampling_overshoot_is_clipped_not_refused(trained: tuple[Colorizer, Path]) -> None:
    colorizer, _ = trained
    image = np.full((8, 8), 0.5, dtype=np.float32)
    image[0, 0], image[0, 1] = -0.01, 1.02
    clipped = image.clip(0, 1)
    np.testing.assert_array_equal(colorizer.colorize(image), colorizer.colorize(clipped))


def test_an_untrained_classifier_is_refused() -> None:
    with pytest.raises(MissingColorTableError, match="no bin color table"):
        Colorizer(ColorizationModule(widths=(8, 16, 32)))


# --- ONNX --------------------------------------------------------------------------------------
def readme_onnx_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (REPO_ROOT / "README.md").read_text(), flags=re.S)
    (example,) = [block for block in blocks if "onnxruntime.InferenceSession" in block]
    return example


def test_the_missing_extra_error_says_what_the_readme_says(trained: tuple[Colorizer, Path], monkeypatch) -> None:
    from lit_colorize.export import INSTALL_EXTRA, MissingExtraError, export_onnx

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=re.escape('pip install -e ".[export]"')):
        export_onnx(trained[0].module, "never.onnx")
    assert INSTALL_EXTRA in (REPO_ROOT / "README.md").read_text()
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    export_extra = re.search(r"export = \[(.*?)\]", pyproject, flags=re.S).group(1)
    for package in ("onnx", "onnxscript", "onnxruntime", "scikit-image"):
        assert f'"{package}>=' in export_extra


@pytest.mark.slow
def test_the_readme_onnx_example_colorizes_like_the_python_api(trained: tuple[Colorizer, Path], tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime comes with the export extra")
    from lit_colorize.export import export_onnx

    colorizer, _ = trained
    module = colorizer.module
    export_onnx(module, tmp_path / "colorize.onnx", temperature=None)
    # A photo at the model's training scale (short side 32, sides multiples of 4): no resampling
    # on either path, so the README's numpy/scikit-image code must match the PyTorch pipeline.
    generator = np.random.default_rng(0)
    photo = (generator.random((32, 48, 3)) * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    example = readme_onnx_example()
    settings = 'model, photo, short_side, multiple = "colorize.onnx", "old_photo.jpg", 128, 16  # as `lit-colorize export` printed'
    assert settings in example, "the README example's first settings line changed; update this test"
    example = example.replace(settings, f'model, photo, short_side, multiple = "colorize.onnx", "photo.png", '
                                        f"{module.net.predict_short_side}, {module.net.size_multiple}")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    with Image.open(tmp_path / "old_photo_color.png") as written:
        from_onnx = np.asarray(written).astype(int)
    from_api = np.asarray(colorizer.colorize(tmp_path / "photo.png", temperature=0.8)).astype(int)
    assert from_onnx.shape == from_api.shape == (32, 48, 3)
    difference = np.abs(from_onnx - from_api)
    assert difference.mean() < 1.0 and np.mean(difference.max(axis=2) <= 2) > 0.99
