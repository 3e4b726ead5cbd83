"""A user's hints (photo pixels, colors as hex or RGB) checked and mapped to the working
resolution; ``Colorizer.colorize(hints=...)`` and ``Colorizer.suggest``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab

from lit_colorize import ColorizationModule, Colorizer
from lit_colorize.color import normalize_ab
from lit_colorize.fullres import full_resolution_l, network_input, render, working_size
from lit_colorize.user_hints import HintError, parse_color, parse_hints, working_hints


def test_colors_as_hex_or_rgb() -> None:
    assert parse_color("#2a6fdb") == parse_color("2A6FDB") == (42, 111, 219)
    assert parse_color((40, 90, 30)) == parse_color([40.0, 90.0, 30.0]) == (40, 90, 30)
    for bad in ["#2a6fd", "blue", (1, 2), (0, 0, 256), (0.5, 0, 0), (True, 0, 0), None]:
        with pytest.raises(ValueError):
            parse_color(bad)


def test_a_hint_takes_the_colors_chroma_at_its_own_lightness() -> None:
    (hint,) = parse_hints([{"x": 3, "y": 4, "color": "#2a6fdb"}], "p.jpg", 10, 10)
    expected = rgb2lab(np.array([[[42, 111, 219]]], dtype=np.float64) / 255.0)[0, 0, 1:]
    np.testing.assert_allclose(hint.ab, expected, atol=0.05)  # scikit-image as the oracle


@pytest.mark.parametrize(
    "hint, message",
    [
        ({"x": 100, "y": 4, "color": "#ffffff"}, "lies outside the 100x50 photo"),
        ({"x": 3, "y": -1, "color": "#ffffff"}, "lies outside the 100x50 photo"),
        ({"x": 3, "y": 4, "color": "#ggg000"}, "is not #rrggbb"),
        ({"x": 3, "y": 4}, "needs color"),
        ({"x": 3, "y": 4, "color": "#ffffff", "radius": 2}, "unknown keys radius"),
        ({"x": "3", "y": 4, "color": "#ffffff"}, "x must be a number"),
        ({"x": 3, "y": 4, "color": "#ffffff", "size": 0}, "size must be at least 1"),
        ("#ffffff", "a hint is"),
    ],
)
def test_each_invalid_hint_names_the_photo_and_the_hint(hint, message: str) -> None:
    good = {"x": 1, "y": 1, "color": "#000000"}
    with pytest.raises(HintError, match=message) as caught:
        parse_hints([good, hint], "holiday.jpg", 50, 100)
    assert str(caught.value).startswith("holiday.jpg: hint 2 (") and "\n" not in str(caught.value)


def test_photo_coordinates_map_to_working_pixels_at_odd_sizes() -> None:
    """A 101 x 75 photo seen at 64 x 48: pixel centres map to pixel centres. By hand:
    x = 50 -> (50.5 * 64 / 101) - 0.5 = 31.5, rounded half up: column 32; y = 74 (the last
    row) -> 75 * 48 / 75 - 0.5 = 47.5, clipped to row 47; size 7 photo pixels at the scale
    sqrt(64/101 * 48/75) = 0.637 -> 4.46 -> 4 working pixels (even: one more up and left)."""
    hints = parse_hints([{"x": 50, "y": 74, "color": (200, 30, 30), "size": 7}], "p.png", 75, 101)
    channels = working_hints(hints, (75, 101), (48, 64))
    mask = channels[0, 2]
    rows, columns = torch.nonzero(mask, as_tuple=True)
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (45, 47, 30, 33)  # clipped at the bottom
    assert torch.allclose(channels[0, :2][:, mask.bool()], normalize_ab(torch.tensor(hints[0].ab))[:, None].float())
    default = working_hints(parse_hints([{"x": 0, "y": 0, "color": "#00ff00"}], "p.png", 75, 101), (75, 101), (48, 64))
    assert int(default[0, 2].sum()) == 4  # 3 x 3 around (0, 0), clipped to the image


def test_hints_to_a_model_trained_without_them_are_refused() -> None:
    colorizer = Colorizer.pretrained()
    photo = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(HintError, match="trained without hints"):
        colorizer.colorize(photo, hints=[{"x": 1, "y": 1, "color": "#ff0000"}])


def test_a_guided_model_colorizes_with_the_hints_it_is_given() -> None:
    """The Colorizer path equals the network fed by hand with the mapped hint channels."""
    torch.manual_seed(0)
    module = ColorizationModule(hints=True, widths=(8, 16, 32)).eval()
    module.net.color_table.built.fill_(True)
    colorizer = Colorizer(module)
    photo = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8)
    hints = [{"x": 10, "y": 20, "color": "#2a6fdb", "size": 5}]
    colored = colorizer.colorize(photo, temperature=1.0, hints=hints)
    net = module.net
    lightness = full_resolution_l(photo)
    l_norm = network_input(lightness, working_size(40, 56, net.predict_short_side, net.size_multiple))
    channels = working_hints(parse_hints(hints, "p", 40, 56), (40, 56), tuple(l_norm.shape[-2:]))
    expected = render(lightness, net.predict_ab(l_norm, [1.0], channels)[0][0], upsampling="guided")
    torch.testing.assert_close(colored, expected)
    assert not torch.equal(colored, colorizer.colorize(photo, temperature=1.0))


@pytest.fixture
def photo(shared_data: Path) -> Path:
    return sorted((shared_data / "photos" / "bsds500" / "test").glob("*.jpg"))[0]


def test_suggestions_are_the_models_most_probable_bins_at_the_pixels_lightness(photo: Path) -> None:
    colorizer = Colorizer.pretrained()
    suggestions = colorizer.suggest(photo, x=100, y=60, k=6)
    assert len(suggestions) == 6
    probabilities = [s["probability"] for s in suggestions]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0 + 1e-6
    # the first is the bin predict would show at that pixel (the network's own argmax)
    net = colorizer.module.net
    rgb = torch.from_numpy(np.array(Image.open(photo).convert("RGB"))).permute(2, 0, 1)
    lightness = full_resolution_l(rgb)
    l_norm = network_input(lightness, working_size(*rgb.shape[-2:], net.predict_short_side, net.size_multiple))
    with torch.no_grad():
        logits = net(l_norm)[0]
    height, width = rgb.shape[-2:]
    row = round((60 + 0.5) * logits.shape[-2] / height - 0.5)
    column = round((100 + 0.5) * logits.shape[-1] / width - 0.5)
    assert suggestions[0]["bin"] == int(logits[:, row, column].argmax())
    # shown at the pixel's L: their L* is the pixel's (colors inside the sRGB gamut)
    pixel_l = float(lightness[60, 100])
    for suggestion in suggestions:
        lab = rgb2lab(np.array([[suggestion["rgb"]]], dtype=np.float64) / 255.0)[0, 0]
        assert abs(lab[0] - pixel_l) < 3.0
        assert suggestion["color"] == "#{:02x}{:02x}{:02x}".format(*suggestion["rgb"])
    bins = [s["bin"] for s in suggestions]
    assert len(set(bins)) == 6 and all(0 <= b < net.grid_size**2 for b in bins)


def test_suggest_refuses_a_pixel_outside_and_a_regression_model(photo: Path) -> None:
    with pytest.raises(HintError, match="outside"):
        Colorizer.pretrained().suggest(photo, x=10_000, y=5)
    regression = ColorizationModule(head="regression").eval()
    with pytest.raises(ValueError, match="classification model"):
        Colorizer(regression).suggest(np.zeros((16, 16, 3), np.uint8), 1, 1)


# --- lit-colorize predict: sidecar files and --data.hints ------------------------------------


def test_predict_reads_sidecar_and_mapped_hints_and_fails_bad_ones_alone(tmp_path: Path, capsys) -> None:
    """A guided checkpoint; one photo with a sidecar, one named in --data.hints, one whose hint
    lies outside it (fails alone, named), one without hints (automatic)."""
    import json

    from tests.helpers import fitted_module
    from tests.test_predict_faults import files_under, make_photos, predict_args, run_in_process

    _, _, trainer = fitted_module(tmp_path / "run", widths=(8, 16, 32), hints=True)
    checkpoint = tmp_path / "guided.ckpt"
    trainer.save_checkpoint(checkpoint)
    photos = make_photos(tmp_path / "in", ["a.png", "b.png", "c.png", "d.png"])
    (tmp_path / "in" / "a.hints.json").write_text(json.dumps([{"x": 5, "y": 5, "color": "#ff0000", "size": 4}]))
    (tmp_path / "in" / "c.hints.json").write_text(json.dumps([{"x": 500, "y": 5, "color": "#ff0000"}]))
    mapping = tmp_path / "hints.json"
    mapping.write_text(json.dumps({str(photos[1]): [{"x": 10, "y": 3, "color": [20, 200, 40]}]}))
    out = tmp_path / "out"
    status = run_in_process(predict_args(checkpoint, [tmp_path / "in"], out, "--data.hints", str(mapping)))
    printed = capsys.readouterr().out
    assert status == 1 and "wrote 3 images" in printed
    assert f"FAILED {photos[2]}: hint 1 ({{'x': 500, 'y': 5, 'color': '#ff0000'}}) lies outside the 56x42 photo" in printed
    assert files_under(out) == {"a_colorized_T0.8.png", "b_colorized_T0.8.png", "d_colorized_T0.8.png"}


def test_predict_refuses_hints_for_a_model_trained_without_them(checkpoint: Path, tmp_path: Path, capsys) -> None:
    import json

    from tests.test_predict_faults import make_photos, predict_args, run_in_process

    (photo,) = make_photos(tmp_path / "in", ["a.png"])
    (tmp_path / "in" / "a.hints.json").write_text(json.dumps([{"x": 5, "y": 5, "color": "#ff0000"}]))
    status = run_in_process(predict_args(checkpoint, [photo], tmp_path / "out"))
    assert status == 1
    assert f"FAILED {photo}: 1 hint(s) given (first at x=5, y=5), but this model was trained without hints" in capsys.readouterr().out


@pytest.mark.parametrize(
    "hint, message",
    [
        ({"x": 10**400, "y": 4, "color": "#ffffff"}, "x must be a number of photo pixels, got 1000"),
        ({"x": 3, "y": 4, "color": "#ffffff", "size": 1e20}, "size must be at most 200 photo pixels (twice the photo's longer side), got 1e+20"),
        ({"x": 3, "y": 4, "color": "#ffffff", "size": 1e300}, "size must be at most 200 photo pixels"),
        ({"x": 3, "y": 4, "color": [10**400, 0, 0]}, "is neither '#rrggbb' nor (r, g, b)"),
    ],
    ids=["400-digit-x", "size-1e20", "size-1e300", "400-digit-channel"],
)  # fmt: skip
def test_huge_numbers_are_refused_in_one_short_line(hint: dict, message: str) -> None:
    """Issue 25 case 7, issue 26 case 8: an int64 overflow (or an OverflowError) used to end
    the whole call; a size is checked against the photo, and the hint is echoed cut short."""
    with pytest.raises(HintError) as caught:
        parse_hints([hint], "holiday.jpg", 50, 100)
    text = str(caught.value)
    assert message in text and "\n" not in text and len(text) < 200, text


def test_colorize_refuses_an_overflowing_size_and_a_huge_count_plainly() -> None:
    torch.manual_seed(0)
    module = ColorizationModule(hints=True, widths=(8, 16, 32)).eval()
    module.net.color_table.built.fill_(True)
    colorizer = Colorizer(module)
    photo = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(HintError, match="size must be at most 60 photo pixels"):
        colorizer.colorize(photo, hints=[{"x": 1, "y": 1, "color": "#ff0000", "size": 1e20}])
    many = [{"x": 1, "y": 1, "color": "#ff0000"}] * 100_000  # 364 s before the cap (issue 26 case 15)
    with pytest.raises(HintError, match="100000 hints, more than the 256 a photo takes"):
        colorizer.colorize(photo, hints=many)
    assert colorizer.colorize(photo, hints=many[:256]).shape == (20, 30, 3)  # the cap itself is served


def test_a_long_value_is_echoed_cut_short() -> None:
    with pytest.raises(HintError) as caught:
        parse_hints([{"x": 1, "y": 1, "color": "#" + "a" * 200_000}], "p.png", 50, 100)
    assert len(str(caught.value)) < 200 and "…" in str(caught.value)
