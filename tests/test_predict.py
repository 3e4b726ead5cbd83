"""Colorizing real photos: the predict CLI, the Colorizer API, self-contained checkpoints, ONNX."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab

from lit_colorize import Colorizer, ColorizationModule
from lit_colorize.colorizer import module_from_checkpoint
from lit_colorize.bins import MissingColorTableError
from tests.conftest import REPO_ROOT, SHARED_DATA

PREDICT_CONFIG = REPO_ROOT / "configs" / "predict.yaml"


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real photos not found at {SHARED_DATA} (the read-only ../shared/data beside the checkout)")
    return sorted((SHARED_DATA / "photos" / "bsds500" / "val").glob("*.jpg"))[:2]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    executable = shutil.which("lit-colorize", path=str(Path(sys.executable).parent))
    assert executable, "the lit-colorize console script is not installed (pip install -e .)"
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run([executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


def test_checkpoint_is_self_contained_and_loads_with_weights_only(checkpoint: Path) -> None:
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = saved["state_dict"]
    assert saved["hyper_parameters"]["head"] == "classification" and saved["hyper_parameters"]["grid_size"] == 18
    assert bool(state["net.color_table.built"]) and state["net.color_table.mode_ab"].shape == (324, 2)
    assert int(state["net.train_image_size"]) == 32  # ToyShapes images; the working size at predict time
    module = module_from_checkpoint(checkpoint)
    assert torch.equal(module.color_table.mode_ab, state["net.color_table.mode_ab"])
    assert module.net.predict_short_side == 32


@pytest.mark.slow
def test_classification_checkpoint_without_table_fails_clearly(tmp_path: Path, photos: list[Path]) -> None:
    module = ColorizationModule(widths=(8, 16, 32))  # never trained: no bin table
    import lightning as L

    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(module)
    path = tmp_path / "untrained.ckpt"
    trainer.save_checkpoint(path)
    with pytest.raises(MissingColorTableError, match="ColorTableBuilder"):
        Colorizer.from_checkpoint(path)
    result = run_cli(
        "predict", "--config", str(PREDICT_CONFIG), "--ckpt_path", str(path),
        "--data.inputs", f"[{photos[0]}]", "--writer.output_dir", str(tmp_path / "out"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert "without a bin color table" in result.stderr
    assert not (tmp_path / "out").exists()


def make_inputs(folder: Path, photos: list[Path]) -> None:
    """A folder as a user has one: a color photo, a gray scan, an RGBA PNG in a subfolder, a
    photo stored sideways with an EXIF orientation, and a corrupt file."""
    folder.mkdir()
    shutil.copy(photos[0], folder / "color.jpg")
    with Image.open(photos[1]) as source:
        source.convert("L").save(folder / "gray.jpg", quality=95)
        rgb = np.asarray(source)
        alpha = np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[None, :].repeat(rgb.shape[0], axis=0)
        (folder / "album").mkdir()
        Image.fromarray(np.dstack([rgb, alpha])).save(folder / "album" / "transparent.png")
        exif = Image.Exif()
        exif[0x0112] = 6  # stored sideways; displayed rotated 90 degrees clockwise
        source.transpose(Image.Transpose.ROTATE_90).save(folder / "sideways.jpg", exif=exif, quality=95)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")


@pytest.mark.slow
def test_predict_cli_colorizes_a_folder_at_full_resolution(tmp_path: Path, checkpoint: Path, photos: list[Path]) -> None:
    inputs, out = tmp_path / "inputs", tmp_path / "colorized"
    make_inputs(inputs, photos)
    args = ["predict", "--config", str(PREDICT_CONFIG), "--ckpt_path", str(checkpoint),
            "--data.inputs", f"[{inputs}]", "--writer.output_dir", str(out), "--writer.temperatures", "[0, 0.8]"]  # fmt: skip
    result = run_cli(*args, cwd=tmp_path)

    # The corrupt file is reported by path, the others are written, the exit status says so.
    assert result.returncode != 0
    assert f"{inputs / 'corrupt.jpg'}" in result.stdout and "1 failed" in result.stdout
    expected = {
        "color_colorized_T0.png", "color_colorized_T0.8.png", "gray_colorized_T0.png", "gray_colorized_T0.8.png",
        "sideways_colorized_T0.png", "sideways_colorized_T0.8.png",
        "album/transparent_colorized_T0.png", "album/transparent_colorized_T0.8.png",
    }  # fmt: skip
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == expected

    # Same size as the input, upright, and the input's own lightness.
    color = pixels(out / "color_colorized_T0.8.png")
    original = pixels(inputs / "color.jpg")
    assert color.shape == original.shape
    gray = pixels(out / "gray_colorized_T0.8.png")
    assert gray.shape == (*pixels(inputs / "gray.jpg").shape, 3)
    with Image.open(photos[1]) as upright:
        assert pixels(out / "sideways_colorized_T0.8.png").shape[:2] == (upright.height, upright.width)
    # CIE L* of the output is the scan's own wherever the new color is inside the sRGB gamut
    # (where it is not, clipping to the gamut moves L too).
    scan = np.repeat(pixels(inputs / "gray.jpg")[..., None], 3, axis=2)
    in_gamut = ((gray > 0) & (gray < 255)).all(axis=2)
    assert in_gamut.sum() > 1000  # a toy-trained model paints strong colors: few pixels stay in gamut
    assert np.abs(rgb2lab(gray)[..., 0] - rgb2lab(scan)[..., 0])[in_gamut].max() < 0.6

    # RGBA keeps its alpha.
    transparent = pixels(out / "album" / "transparent_colorized_T0.8.png")
    assert transparent.shape[2] == 4
    assert np.array_equal(transparent[..., 3], pixels(inputs / "album" / "transparent.png")[..., 3])

    # The Python API gives the same pixels as the CLI.
    colorizer = Colorizer.from_checkpoint(checkpoint)
    assert np.array_equal(np.asarray(colorizer.colorize(inputs / "color.jpg", temperature=0.8)), color)
    assert np.array_equal(np.asarray(colorizer.colorize(str(inputs / "album" / "transparent.png"), 0.8)), transparent)

    # A second run never replaces what the first wrote, unless --overwrite.
    before = (out / "color_colorized_T0.8.png").stat().st_mtime_ns
    again = run_cli(*args[:-4], "--data.inputs", f"[{inputs / 'color.jpg'}]", "--writer.temperatures", "[0.8]", cwd=tmp_path)
    assert again.returncode == 0 and "exists, skipped (pass --skip_existing to skip quietly or --overwrite to replace)" in again.stdout
    assert (out / "color_colorized_T0.8.png").stat().st_mtime_ns == before
    forced = run_cli(
        *args[:-4], "--data.inputs", f"[{inputs / 'color.jpg'}]", "--writer.temperatures", "[0.8]", "--overwrite",
        "--writer.image_format", "jpeg", "--writer.quality", "90", cwd=tmp_path,
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert pixels(out / "color_colorized_T0.8.jpg").shape == original.shape


def test_colorizer_accepts_every_kind_of_image(checkpoint: Path, photos: list[Path]) -> None:
    colorizer = Colorizer.from_checkpoint(checkpoint, device="cpu")
    with Image.open(photos[0]) as photo:
        photo = photo.convert("RGB")
    reference = np.asarray(colorizer.colorize(photo))
    height, width = reference.shape[:2]
    as_numpy = colorizer.colorize(np.asarray(photo))
    as_tensor = colorizer.colorize(torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1))
    as_float = colorizer.colorize(torch.from_numpy(np.asarray(photo) / 255.0).permute(2, 0, 1).float())
    assert isinstance(as_numpy, np.ndarray) and np.array_equal(as_numpy, reference)
    assert isinstance(as_tensor, torch.Tensor) and np.array_equal(as_tensor.permute(1, 2, 0).numpy(), reference)
    assert np.abs(as_float.permute(1, 2, 0).numpy().astype(int) - reference).max() <= 1
    gray = np.asarray(photo.convert("L"))
    assert colorizer.colorize(gray).shape == (height, width, 3)
    batch = colorizer.colorize([photo, photos[1]], temperature=0.0)
    assert len(batch) == 2 and all(isinstance(image, Image.Image) for image in batch)
    with pytest.raises(TypeError, match="cannot colorize"):
        colorizer.colorize(3.14)


def test_large_photo_keeps_its_size(checkpoint: Path) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real photos not found at {SHARED_DATA}")
    path = SHARED_DATA / "photos" / "large" / "mate-backgrounds__GreenMeadow.jpg"
    colored = Colorizer.from_checkpoint(checkpoint).colorize(path)
    assert colored.size == (1280, 1024)


onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is a dev dependency: pip install -e .[dev]")


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [None, 0.8], ids=["T-input", "T-fixed"])
@pytest.mark.parametrize("decoding", ["mode_mean", "annealed_mean"])
def test_onnx_export_matches_pytorch_on_real_photos(
    tmp_path: Path, checkpoint: Path, photos: list[Path], temperature: float | None, decoding: str
) -> None:
    from lit_colorize.export import export_onnx
    from lit_colorize.fullres import full_resolution_l, network_input, working_size
    from lit_colorize.imageio import load_rgb

    module = module_from_checkpoint(checkpoint)
    module.hparams.decoding = decoding
    path = export_onnx(module, tmp_path / "model.onnx", temperature)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for photo in photos:
        lightness = full_resolution_l(load_rgb(photo))
        l_norm = network_input(lightness, working_size(*lightness.shape, 96, module.net.size_multiple))
        for t in [0.0, 0.8, 1.0] if temperature is None else [temperature]:
            feeds = {"l": l_norm.numpy()}
            if temperature is None:
                feeds["temperature"] = np.array(t, dtype=np.float32)
            (ab,) = session.run(None, feeds)
            expected = module.net.predict_ab(l_norm, [t])[0].numpy()
            assert ab.shape == expected.shape
            np.testing.assert_allclose(ab, expected, atol=1e-3, rtol=0)


@pytest.mark.slow
def test_export_cli_writes_and_never_overwrites(tmp_path: Path, checkpoint: Path) -> None:
    output = tmp_path / "model.onnx"
    first = run_cli("export", "--ckpt_path", str(checkpoint), "--output", str(output), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert output.stat().st_size > 10_000 and "inputs (l, temperature) -> ab" in first.stdout
    second = run_cli("export", "--ckpt_path", str(checkpoint), "--output", str(output), "--temperature", "0.5", cwd=tmp_path)
    assert second.returncode == 1 and "exists" in second.stderr  # one line, exit 1, as every error of the CLI
