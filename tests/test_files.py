"""lit_colorize.files: the one image-suffix list and folder scan of Landscape and predict."""

from __future__ import annotations

import os
from pathlib import Path

from lit_colorize.files import IMAGE_SUFFIXES, image_files, walk_files


def _tree(root: Path) -> None:
    for name in ["b.jpg", "a/x.PNG", "a/y.txt", "a/deep/z.webp", ".hidden.png", "a/.h/w.gif", "c.tiff.bak", "d.Jpeg"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / "link.png").symlink_to(root / "b.jpg")  # a symlink to a file counts
    (root / "broken.jpg").symlink_to(root / "missing.jpg")  # a broken one does not
    (root / "folder_link").symlink_to(root / "a", target_is_directory=True)  # not followed
    (root / "dir.png").mkdir()  # a folder with an image's name is not an image


def test_image_files_are_the_sorted_rglob_of_image_files(tmp_path: Path) -> None:
    """Oracle: what Landscape did before (sorted rglob, is_file, suffix in any case)."""
    _tree(tmp_path)
    expected = [p for p in sorted(tmp_path.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    assert image_files(tmp_path) == expected
    names = [p.relative_to(tmp_path).as_posix() for p in expected]
    assert names == [".hidden.png", "a/.h/w.gif", "a/deep/z.webp", "a/x.PNG", "b.jpg", "d.Jpeg", "link.png"]


def test_walk_files_skips_folders_and_reports_unlistable_ones(tmp_path: Path) -> None:
    _tree(tmp_path)
    files = [p for p, error in walk_files(tmp_path, skip_dirs=[tmp_path / "a"]) if error is None]
    assert not [p for p in files if "a" in p.relative_to(tmp_path).parts[:1]]
    locked = tmp_path / "a" / "deep"
    os.chmod(locked, 0)
    try:
        if os.access(locked, os.R_OK):  # root reads anything: nothing to report
            return
        errors = [(p, e) for p, e in walk_files(tmp_path) if e is not None]
        assert [p for p, _ in errors] == [locked] and isinstance(errors[0][1], PermissionError)
        assert tmp_path / "a" / "deep" / "z.webp" not in image_files(tmp_path)
    finally:
        os.chmod(locked, 0o755)
