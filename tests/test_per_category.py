"""benchmarks/per_category.py: the per-category table is what ``evaluate`` gives on each
category's photos alone, with one color prior for every model, and the verdicts follow it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import per_category
from lit_colorize.colorizer import module_from_checkpoint
from lit_colorize.evaluation import GRAY, evaluate


def make_corpus(root: Path) -> Path:
    rng = np.random.default_rng(0)
    entries = []
    for category in ("people", "nature"):
        for i in range(3):
            entry = f"src/{category}/{i}.png"
            (root / entry).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((rng.random((40, 52, 3)) * 255).astype(np.uint8)).save(root / entry)
            entries.append(entry)
    listing = root / "heldout.txt"
    listing.write_text("# held out\n" + "\n".join(entries) + "\n")
    return listing


def test_rows_are_evaluate_on_each_category_with_one_prior(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = make_corpus(tmp_path / "corpus")
    out = tmp_path / "report.txt"
    per_category.main(["--files_from", str(listing), "--root", str(tmp_path / "corpus"), "--models", str(checkpoint), "--out", str(out)])
    printed = capsys.readouterr().out
    assert out.read_text() == printed
    module = module_from_checkpoint(checkpoint)
    setting = per_category.own_setting(module)
    people = sorted((tmp_path / "corpus" / "src" / "people").iterdir())
    expected = evaluate(module, people, [setting], prior=module.net.color_table.counts, log=lambda m: None)
    gray = expected.rows[GRAY]
    assert f"| people | 3 | gray | {gray['auc']:.4f} | {gray['auc_rebalanced']:.4f} | {gray['psnr_median']:.2f} |" in printed
    ours = expected.rows[setting.name]
    assert f"| {ours['auc']:.4f} | {ours['auc_rebalanced']:.4f} | {ours['psnr_median']:.2f} |" in printed
    assert "| all | 6 | gray |" in printed
    gaps = []
    for category in ("people", "nature"):
        photos = sorted((tmp_path / "corpus" / "src" / category).iterdir())
        rows = evaluate(module, photos, [setting], prior=module.net.color_table.counts, log=lambda m: None).rows
        gaps.append(min(rows[setting.name]["auc"] - rows[GRAY]["auc"], rows[setting.name]["psnr_median"] - rows[GRAY]["psnr_median"]))
    verdict = "yes" if min(gaps) >= 0 else "no"
    assert f"AuC and median PSNR >= gray in every category: {verdict}" in printed


def test_a_list_without_category_parts_is_one_line(tmp_path: Path) -> None:
    listing = tmp_path / "flat.txt"
    listing.write_text("photo.png\n")
    with pytest.raises(SystemExit, match="no path part 1"):
        per_category.by_category(["photo.png"], tmp_path, 1)


def test_one_prior_for_every_model(checkpoint: Path, tmp_path: Path) -> None:
    """A second model's rows are weighed by the first model's prior (the default), not its own."""
    listing = make_corpus(tmp_path / "corpus")
    module = module_from_checkpoint(checkpoint)
    other = tmp_path / "other.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    state["state_dict"] = {k: (v * 0 + 1 if "color_table.counts" in k else v) for k, v in state["state_dict"].items()}
    torch.save(state, other)
    assert not torch.equal(module_from_checkpoint(other).net.color_table.counts, module.net.color_table.counts)
    report = tmp_path / "report.txt"
    per_category.main(["--files_from", str(listing), "--root", str(tmp_path / "corpus"), "--models", str(checkpoint), str(other), "--out", str(report)])
    text = report.read_text()
    assert len([line for line in text.splitlines() if "| gray |" in line]) == 3  # one per category and overall, shared
    other_module = module_from_checkpoint(other)
    setting = per_category.own_setting(other_module)
    people = sorted((tmp_path / "corpus" / "src" / "people").iterdir())
    with_first = evaluate(other_module, people, [setting], prior=module.net.color_table.counts, log=lambda m: None).rows[setting.name]
    assert f"| people | 3 | other.ckpt ({setting.name}, {other_module.net.predict_short_side} px) | {with_first['auc']:.4f} | {with_first['auc_rebalanced']:.4f} |" in text
