"""scripts/build_corpus.py and lit_colorize.corpus on a small tree made here: a git source with
duplicates, a gray photo, a corrupt file, a symlink, a Git LFS pointer and a copy of a test
photo, beside a folder source; checked against hand-written expectations."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from lit_colorize.corpus import NameBook, NearDuplicates, Source, corpus_file_name, perceptual_hash, stratified_held_out, strided
from lit_colorize.errors import ConfigError
from tests.conftest import REPO_ROOT

pytest.importorskip("imagehash", reason="the corpus builder needs imagehash (pip install -e '.[corpus]')")


def photo(seed: int, size: tuple[int, int] = (120, 90), gray: bool = False) -> Image.Image:
    """A smooth random color photo, distinct per seed (a perceptual hash tells them apart)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    return image.convert("L").convert("RGB") if gray else image


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(sources.json, a git clone, a folder source)."""
    repo = tmp_path / "repo"
    (repo / "people").mkdir(parents=True)
    (repo / "things").mkdir()
    (repo / "test").mkdir()
    photo(1).save(repo / "people" / "a.jpg", quality=95)
    photo(1, size=(240, 180)).save(repo / "people" / "a_large.png")  # the same photo, larger: a duplicate
    photo(2, size=(600, 400)).save(repo / "people" / "b.jpg", quality=95)  # shrunk to 256 on the short side
    photo(3, gray=True).save(repo / "things" / "gray.jpg")  # near-gray
    (repo / "things" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (repo / "things" / "lfs.jpg").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 12\n")
    (repo / "things" / "link.jpg").symlink_to("../people/b.jpg")
    photo(4).save(repo / "things" / "c.jpg", quality=90)
    photo(9).save(repo / "things" / "c.png")  # another photo of the same stem: both kept, apart
    photo(5).save(repo / "things" / "d.jpg")  # recompressed below: a look-alike of the test photo
    photo(5).save(repo / "test" / "t.png")
    (repo / "notes.txt").write_text("not a photo")
    for d in ("frames",):
        (repo / d).mkdir()
        for i in range(4):
            photo(10 + i).save(repo / d / f"f{i}.jpg")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "photos")
    commit = git(repo, "rev-parse", "HEAD")
    folder = tmp_path / "folder"
    (folder / "train").mkdir(parents=True)
    photo(1).resize((100, 75)).save(folder / "train" / "a_copy.jpg", quality=80)  # a cross-source duplicate
    photo(6).save(folder / "train" / "e.jpg")
    table = {
        "sources": [
            {
                "name": "repo", "repo": "someone/photos", "commit": commit, "licence": "CC0",
                "test_sets": ["test/*"], "stride": 1,
                "rules": [["people/*", "people"], ["things/*", "objects"], ["frames/*", "street"]],
            },
            {"name": "folder", "licence": "research", "rules": [["train/*", "mixed"]]},
        ]
    }  # fmt: skip
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(table))
    return path, repo, folder


def load_script() -> object:
    spec = importlib.util.spec_from_file_location("build_corpus", REPO_ROOT / "scripts" / "build_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD_CORPUS = load_script()


def run_builder(tmp_path: Path, table: Path, *extra: str) -> SimpleNamespace:
    """The script's ``main`` in this process (no second torch import): its exit code and output."""
    argv = ["--sources", str(table), "--lists", str(tmp_path / "lists"), "--out", str(tmp_path / "corpus"), *extra]
    stdout, stderr, code = io.StringIO(), io.StringIO(), 0
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            BUILD_CORPUS.main(argv)  # type: ignore[attr-defined]
    except SystemExit as exit_:
        code = 1
        stderr.write(str(exit_.code))
    finally:
        os.chdir(cwd)
    return SimpleNamespace(returncode=code, stdout=stdout.getvalue(), stderr=stderr.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_builder_keeps_exactly_the_good_distinct_photos(tmp_path: Path, sources: tuple[Path, Path, Path]) -> None:
    table, repo, folder = sources
    result = run_builder(tmp_path, table, "--source", f"repo={repo}", "--source", f"folder={folder}", "--heldout_fraction", "0.5")
    assert result.returncode == 0, result.stderr
    corpus = tmp_path / "corpus"
    manifest = read_csv(corpus / "manifest.csv")
    kept = {(row["source"], row["path"]) for row in manifest}
    assert kept == {
        ("repo", "people/a.jpg"), ("repo", "people/b.jpg"), ("repo", "things/c.jpg"), ("repo", "things/c.png"),
        *{("repo", f"frames/f{i}.jpg") for i in range(4)}, ("folder", "train/e.jpg"),
    }  # fmt: skip
    skipped = {row["path"]: row["reason"] for row in read_csv(corpus / "skipped.csv")}
    assert skipped == {
        "people/a_large.png": "duplicate",
        "things/gray.jpg": "near-gray",
        "things/corrupt.jpg": "unreadable",
        "things/lfs.jpg": "unreadable",
        "things/link.jpg": "symbolic link",
        "things/d.jpg": "look-alike of a test or held-out photo",
        "train/a_copy.jpg": "duplicate",
    }
    assert "test/t.png" not in {row["path"] for row in manifest}  # a test photo is never taken
    by_path = {row["path"]: row for row in manifest}
    assert by_path["people/a.jpg"]["commit"] == git(repo, "rev-parse", "HEAD")
    assert by_path["people/a.jpg"]["category"] == "people" and by_path["people/a.jpg"]["licence"] == "CC0"
    assert by_path["things/c.jpg"]["category"] == "objects" and by_path["train/e.jpg"]["category"] == "mixed"
    with Image.open(corpus / by_path["people/b.jpg"]["file"]) as stored:
        assert stored.size == (384, 256) and stored.format == "JPEG"  # 600x400 -> 256 on the short side
    for row in manifest:
        assert (corpus / row["file"]).is_file()
    assert len({row["file"] for row in manifest}) == len(manifest)  # no photo written over another
    assert by_path["things/c.png"]["file"] == "repo/objects/things--c_png.jpg"
    held = [line for line in (tmp_path / "lists" / "heldout.txt").read_text().splitlines() if not line.startswith("#")]
    train = [line for line in (tmp_path / "lists" / "train.txt").read_text().splitlines() if not line.startswith("#")]
    assert sorted(held + train) == sorted(row["file"] for row in manifest) and not set(held) & set(train)
    assert "frames" in "".join(held)  # half of each (source, category) group: the 4 frames give 2
    assert sum("frames" in name for name in held) == 2


def test_builder_never_touches_an_existing_corpus_and_names_missing_sources(
    tmp_path: Path, sources: tuple[Path, Path, Path]
) -> None:
    table, repo, folder = sources
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "mine.txt").write_text("keep")
    result = run_builder(tmp_path, table, "--source", f"repo={repo}", "--source", f"folder={folder}")
    assert result.returncode == 1 and "already exists" in result.stderr
    assert (tmp_path / "corpus" / "mine.txt").read_text() == "keep"
    result = run_builder(tmp_path, table, "--out", str(tmp_path / "other"), "--source", f"repo={repo}")
    assert result.returncode == 1 and "no --source given for folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    command = [sys.executable, str(REPO_ROOT / "scripts" / "build_corpus.py"), "--out", str(tmp_path / "x"), "--source", "nope=."]
    as_command = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert as_command.returncode == 1 and as_command.stderr.strip().splitlines() == [
        "build_corpus: --source 'nope=.': expected NAME=PATH with NAME one of "
        "['bsds500', 'caltech101', 'camvid', 'facemask', 'imagenet', 'intel']"
    ]
    result = run_builder(tmp_path, table, "--out", str(tmp_path / "other"), "--source", f"repo={folder}", "--source", f"folder={folder}")
    assert result.returncode == 1 and "not a git clone" in result.stderr and not (tmp_path / "other").exists()


def test_stride_and_exclude_list(tmp_path: Path, sources: tuple[Path, Path, Path]) -> None:
    table, repo, folder = sources
    spec = json.loads(table.read_text())
    spec["sources"][0]["stride"] = 2
    table.write_text(json.dumps(spec))
    listing = tmp_path / "never.txt"
    listing.write_text(f"# photos another model holds out\n{folder / 'train' / 'e.jpg'}\n")
    result = run_builder(tmp_path, table, "--source", f"repo={repo}", "--source", f"folder={folder}", "--exclude_like", str(listing))
    assert result.returncode == 0, result.stderr
    kept = {row["path"] for row in read_csv(tmp_path / "corpus" / "manifest.csv")}
    assert {p for p in kept if p.startswith("frames/")} == {"frames/f0.jpg", "frames/f2.jpg"}
    assert "train/e.jpg" not in kept


def test_near_duplicates_matches_a_brute_force_search() -> None:
    rng = np.random.default_rng(0)
    stored = [int(v) for v in rng.integers(0, 2**63, 300, dtype=np.int64)]
    index = NearDuplicates(max_distance=4)
    for i, value in enumerate(stored):
        index.add(value, f"k{i:03d}")
    queries = [v ^ (1 << int(b)) ^ (1 << int(c)) for v, b, c in zip(stored[:50], rng.integers(0, 64, 50), rng.integers(0, 64, 50))]
    queries += [int(v) for v in rng.integers(0, 2**63, 200, dtype=np.int64)]
    for query in queries:
        close = [f"k{i:03d}" for i, v in enumerate(stored) if bin(v ^ query).count("1") <= 4]
        assert index.find(query) == (min(close) if close else None)


def test_perceptual_hash_survives_resizing_and_recompression(tmp_path: Path) -> None:
    original = photo(7, size=(300, 200))
    original.resize((150, 100)).save(tmp_path / "small.jpg", quality=70)
    with Image.open(tmp_path / "small.jpg") as small:
        assert bin(perceptual_hash(original) ^ perceptual_hash(small.convert("RGB"))).count("1") <= 4
    assert bin(perceptual_hash(original) ^ perceptual_hash(photo(8, size=(300, 200)))).count("1") > 10


def test_stratified_split_and_helpers() -> None:
    groups = {("a", "people"): [f"a{i}" for i in range(40)], ("b", "street"): [f"b{i}" for i in range(12)], ("c", "x"): ["c0"]}
    held = stratified_held_out(groups, 0.05, seed=0)
    assert sum(name.startswith("a") for name in held) == 2 and sum(name.startswith("b") for name in held) == 1
    assert "c0" not in held and held == stratified_held_out(groups, 0.05, seed=0)
    assert held != stratified_held_out(groups, 0.05, seed=1)
    assert corpus_file_name("cam", "street", "CamVid/train/0001 TP.png") == "cam/street/CamVid--train--0001_TP_png.jpg"
    assert corpus_file_name("f", "people", "d/x copy.jpg") == "f/people/d--x_copy.jpg"
    book = NameBook()
    assert [book.claim(n) for n in ("s/c/a.jpg", "s/c/a.jpg", "s/c/b.jpg", "s/c/a.jpg")] == ["s/c/a.jpg", "s/c/a~2.jpg", "s/c/b.jpg", "s/c/a~3.jpg"]
    source = Source("s", "CC0", (("x/drop/*", "drop"), ("x/*", "objects")), test_sets=("t/*",))
    assert source.category("x/drop/1.jpg") == "drop" and source.category("x/a/1.jpg") == "objects"
    assert source.category("y/1.jpg") is None and source.is_test_set("t/1.jpg")


def test_committed_sources_table_loads() -> None:
    from lit_colorize.corpus import load_sources

    sources = load_sources(REPO_ROOT / "docs" / "data" / "sources.json")
    names = [source.name for source in sources]
    assert names == ["imagenet", "caltech101", "facemask", "camvid", "intel", "bsds500"]
    bsds = sources[-1]
    assert bsds.is_test_set("test/100007.jpg") and bsds.category("test/100007.jpg") is None  # never trained on
    intel = sources[names.index("intel")]
    assert intel.is_test_set("dataset/seg_test/street/1.jpg") and intel.is_test_set("dataset/seg_pred/1.jpg")
    with pytest.raises(ConfigError, match="cannot read"):
        load_sources(REPO_ROOT / "docs" / "data" / "missing.json")


def test_strided_takes_every_nth_file_per_folder() -> None:
    from lit_colorize.corpus import Entry

    entries = [Entry(f"{d}/{i}.jpg", "") for d in ("a", "b") for i in range(5)]
    assert [e.path for e in strided(entries, 2)] == ["a/0.jpg", "a/2.jpg", "a/4.jpg", "b/0.jpg", "b/2.jpg", "b/4.jpg"]



def test_committed_held_out_split_is_disjoint_and_stratified() -> None:
    lists = REPO_ROOT / "docs" / "data"
    read = lambda name: [line for line in (lists / name).read_text().splitlines() if not line.startswith("#")]  # noqa: E731
    held, train = read("heldout.txt"), read("train.txt")
    assert len(set(held)) == len(held) and len(set(train)) == len(train) and not set(held) & set(train)
    assert 0.045 <= len(held) / (len(held) + len(train)) <= 0.055
    groups = lambda files: {tuple(f.split("/")[:2]) for f in files}  # noqa: E731
    assert groups(held) == groups(train)  # every (source, category) group is measured
    assert not any(name.startswith("bsds500/") and "/test--" in name for name in held + train)  # BSDS500 test: never


def test_committed_tuning_list_is_the_search_tuning_set_inside_train() -> None:
    """docs/data/tuning.txt: 60 photos per category of the training list (none held out), the
    recipe search's seeded tuning set, which v2 neither trains nor validates on."""
    from benchmarks.recipe_corpus import tuning_split

    lists = REPO_ROOT / "docs" / "data"
    read = lambda name: [line for line in (lists / name).read_text().splitlines() if not line.startswith("#")]  # noqa: E731
    tuning, train, held = read("tuning.txt"), read("train.txt"), read("heldout.txt")
    assert set(tuning) <= set(train) and not set(tuning) & set(held)
    assert sorted(name.split("/")[1] for name in tuning) == sorted(["nature", "objects", "people", "street"] * 60)
    assert tuning == tuning_split(train, 60, 0)[1]
