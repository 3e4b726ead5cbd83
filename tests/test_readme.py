"""The README's numbers that a test can check: every count of tests it states equals what
pytest collects.

The README states test counts only in these phrases (keep them when updating the numbers):

* ``The whole suite (N tests, plus G that need a GPU)``: N tests run without a GPU, G are gpu-marked;
* ``leave out the S tests marked `slow```: S slow-marked tests;
* ``-m "not slow"     # F tests (plus G GPU skips)``: F not-slow tests without a GPU, G gpu-marked;
* ``the D tests that take the `shared_data` fixture``: D tests that skip without ../shared/data.

Any other "N tests" in the README fails the test, so a new count cannot go unchecked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

WHOLE = re.compile(r"The whole suite \((?P<tests>[\d,]+) tests, plus (?P<gpu>[\d,]+) that need a GPU\)")
SLOW = re.compile(r"leave out the (?P<slow>[\d,]+) tests marked\s+`slow`")
FAST = re.compile(r'-m "not slow"\s+# (?P<tests>[\d,]+) tests \(plus (?P<gpu>[\d,]+) GPU skips\)')
SHARED = re.compile(r"the (?P<shared>[\d,]+) tests that take the\s+`shared_data` fixture")
ANY_COUNT = re.compile(r"\b[\d,]+\+? tests\b")

# Collects the suite in a fresh interpreter and writes (node id, slow, gpu, shared data) of every item.
COLLECT = """
import json, sys
import pytest

class Recorder:
    items = []
    def pytest_collection_finish(self, session):
        Recorder.items = [(item.nodeid, item.get_closest_marker("slow") is not None,
                           item.get_closest_marker("gpu") is not None,
                           "shared_data" in getattr(item, "fixturenames", ())) for item in session.items]

code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests"], plugins=[Recorder()])
with open(sys.argv[1], "w") as out:
    json.dump({"code": int(code), "items": Recorder.items}, out)
"""


def number(text: str) -> int:
    return int(text.replace(",", ""))


@dataclass(frozen=True)
class Counts:
    """What pytest collects: all items, slow-marked, gpu-marked, gpu-marked among the not-slow,
    and those that take the shared_data fixture."""

    total: int
    slow: int
    gpu: int
    gpu_not_slow: int
    shared_data: int


def collected_counts(tmp_path: Path) -> Counts:
    out = tmp_path / "collected.json"
    run = subprocess.run([sys.executable, "-c", COLLECT, str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.is_file(), f"collection crashed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert result["code"] == 0, f"pytest --collect-only failed (exit {result['code']}):\n{run.stdout[-3000:]}"
    items = result["items"]
    return Counts(
        total=len(items),
        slow=sum(slow for _, slow, _, _ in items),
        gpu=sum(gpu for _, _, gpu, _ in items),
        gpu_not_slow=sum(gpu and not slow for _, slow, gpu, _ in items),
        shared_data=sum(shared for *_, shared in items),
    )


def test_the_count_phrases_are_found_and_no_other_count_is_stated() -> None:
    text = (REPO_ROOT / "README.md").read_text()
    spans = []
    for pattern in (WHOLE, SLOW, FAST, SHARED):
        found = list(pattern.finditer(text))
        assert len(found) == 1, f"README.md should state {pattern.pattern!r} once, found {len(found)}"
        spans.append(found[0].span())
    unchecked = [m.group(0) for m in ANY_COUNT.finditer(text) if not any(a <= m.start() < b for a, b in spans)]
    assert not unchecked, f"README.md states test counts this test does not check: {unchecked}; use the phrases in tests/test_readme.py"


@pytest.mark.slow
def test_readme_test_counts_equal_what_pytest_collects(tmp_path: Path) -> None:
    text = (REPO_ROOT / "README.md").read_text()
    whole, slow, fast, shared = WHOLE.search(text), SLOW.search(text), FAST.search(text), SHARED.search(text)
    assert whole and slow and fast and shared, "a count phrase is missing from README.md (see this file's docstring)"
    counts = collected_counts(tmp_path)
    not_slow = counts.total - counts.slow
    stated = {
        "whole suite without a GPU": number(whole["tests"]),
        "gpu-marked (whole suite)": number(whole["gpu"]),
        "marked slow": number(slow["slow"]),
        "not slow, without a GPU": number(fast["tests"]),
        "gpu-marked among not slow": number(fast["gpu"]),
        "take shared_data": number(shared["shared"]),
    }
    collected = {
        "whole suite without a GPU": counts.total - counts.gpu,
        "gpu-marked (whole suite)": counts.gpu,
        "marked slow": counts.slow,
        "not slow, without a GPU": not_slow - counts.gpu_not_slow,
        "gpu-marked among not slow": counts.gpu_not_slow,
        "take shared_data": counts.shared_data,
    }
    assert stated == collected, f"README.md's test counts (left) differ from pytest --collect-only (right): {stated} != {collected}"
