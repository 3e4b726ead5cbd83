"""Issue 14's house rules, read from the source with ast (no torch import, so it runs in a blink).

(a) Imports only point down: lit_colorize never imports callbacks or datamodules,
    and callbacks and datamodules do not import each other.
(b) No private name (one leading underscore) of a project module is used by another module,
    a benchmark or a test; tests/test_<stem>.py may use the private names of <stem>.py.
"""

import ast
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lit_colorize", "callbacks", "datamodules")
PROJECT = (*PACKAGES, "benchmarks")  # modules whose private names are guarded
SCANNED = (*PROJECT, "scripts", "tests")
FORBIDDEN = {"lit_colorize": {"callbacks", "datamodules"}, "callbacks": {"datamodules"}, "datamodules": {"callbacks"}}
Members = dict[str, set[Path]]  # private method/attribute name -> files of the classes that define it


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and len(name) > 1


def source_files(dirs: tuple[str, ...] = SCANNED) -> list[Path]:
    return sorted(p.relative_to(ROOT) for d in dirs for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


def owner_file(module: str) -> Path | None:
    """The project file a dotted name lives in (longest prefix that is a file), or None if not ours."""
    parts = module.split(".")
    if parts[0] not in PROJECT:
        return None
    for n in range(len(parts), 0, -1):
        path = Path(*parts[:n])
        for candidate in (path.with_suffix(".py"), path / "__init__.py"):
            if (ROOT / candidate).is_file():
                return candidate
    return None


def may_use(rel: Path, owner: Path) -> bool:
    """A module may use its own private names; so may the tests named after it."""
    stem = owner.parent.name if owner.name == "__init__.py" else owner.stem
    return rel == owner or rel == Path("tests", f"test_{stem}.py")


def absolute(node: ast.ImportFrom, rel: Path) -> str:
    """`from ..x import y` spelled from the repository root."""
    if not node.level:
        return node.module or ""
    base = rel.parent.parts[: len(rel.parent.parts) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def base_private_names() -> set[str]:
    """Private methods/attributes of Lightning and torch classes: a project class defining one overrides it."""
    found: set[str] = set()
    for package, subdirs in (("lightning", ("pytorch",)), ("torch", ("nn", "utils/data", "autograd"))):
        spec = importlib.util.find_spec(package)  # locates the package without importing it
        assert spec is not None and spec.origin is not None, package
        for sub in subdirs:
            for path in (Path(spec.origin).parent / sub).rglob("*.py"):
                text = path.read_text(errors="ignore")
                found |= set(re.findall(r"^\s+def (_\w+)\(", text, re.M)) | set(re.findall(r"self\.(_\w+)\s*[:=]", text))
    return found


def private_members() -> Members:
    """Private methods and `self._x` attributes of the project's own classes (overrides excluded)."""
    members: Members = {}
    for rel in source_files(PACKAGES):
        for cls in ast.walk(ast.parse((ROOT / rel).read_text(), str(rel))):
            if isinstance(cls, ast.ClassDef):
                for node in ast.walk(cls):
                    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node in cls.body:
                        names = [node.name]
                    elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                        names = [node.attr] if isinstance(node.value, ast.Name) and node.value.id == "self" else []
                    else:
                        names = []
                    for name in filter(is_private, names):
                        members.setdefault(name, set()).add(rel)
    inherited = base_private_names()
    return {name: files for name, files in members.items() if name not in inherited}


def dotted(node: ast.expr, bound: dict[str, str]) -> str | None:
    """`a.b.c` with its root replaced by the module an import bound it to, or None."""
    if isinstance(node, ast.Attribute):
        head = dotted(node.value, bound)
        return head and f"{head}.{node.attr}"
    return bound.get(node.id) if isinstance(node, ast.Name) else None


def check_source(source: str, rel: Path, members: Members) -> list[str]:
    """Every breach of rules (a) and (b) in one file, as 'file:line message'."""
    tree = ast.parse(source, str(rel))
    found: list[str] = []
    bound: dict[str, str] = {}  # local name -> dotted module (or module member) an import bound it to
    forbidden = FORBIDDEN.get(rel.parts[0], set())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in forbidden:
                    found.append(f"{rel}:{node.lineno} imports {alias.name} (layering)")
                bound[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            module = absolute(node, rel)
            if module.split(".")[0] in forbidden:
                found.append(f"{rel}:{node.lineno} imports {module} (layering)")
            owner = owner_file(module)
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{module}.{alias.name}"
                if owner and is_private(alias.name) and not may_use(rel, owner):
                    found.append(f"{rel}:{node.lineno} imports {alias.name} from {owner}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            owner = owner_file(dotted(node.value, bound) or "")
            if owner and not may_use(rel, owner):
                found.append(f"{rel}:{node.lineno} uses {node.attr} of {owner}")
            elif node.attr in members and not any(may_use(rel, o) for o in members[node.attr]):
                found.append(f"{rel}:{node.lineno} uses {node.attr} of {', '.join(map(str, sorted(members[node.attr])))}")
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name in members:
                    if not any(may_use(rel, o) for o in members[item.name]):
                        found.append(f"{rel}:{item.lineno} overrides {item.name} of {', '.join(map(str, sorted(members[item.name])))}")
    return sorted(set(found), key=lambda s: (s.split(":")[0], int(s.split(":")[1].split()[0])))


def test_checker_catches_breaches() -> None:
    """The checker must be able to fail: each kind of breach in a synthetic file is reported."""
    members = {"_shared_step": {Path("lit_colorize/module.py")}}
    source = "\n".join([
        "import lit_colorize.bins as b", "from lit_colorize import module", "def f():",
        "    from datamodules.photos import Photos", "    return b._private, module._x, m._shared_step(1)",
        "from lit_colorize.module import _hidden", "class T(M):", "    def _shared_step(self, batch):",
        "        return super()._shared_step(batch)",
    ])
    found = check_source(source, Path("lit_colorize/fake.py"), members)
    assert [line.split()[0] for line in found] == [f"lit_colorize/fake.py:{n}" for n in (4, 5, 5, 5, 6, 8, 9)], found
    assert check_source("m._shared_step(1)", Path("tests/test_module.py"), members) == []
    assert check_source("import callbacks.progress", Path("datamodules/x.py"), members)


def test_house_rules() -> None:
    """No breach of issue 14's rules anywhere in the project."""
    members = private_members()
    found = [v for rel in source_files() for v in check_source((ROOT / rel).read_text(), rel, members)]
    assert not found, f"{len(found)} breaches of the house rules:\n" + "\n".join(found)


def test_the_module_stays_wiring_and_checkpoint_reading_sits_below_its_users() -> None:
    """Issue 27's house rules: module.py is the LightningModule's wiring (at most 250 lines;
    what is not wiring lives next to what it serves), and neither colorizer.py nor
    pretrained.py needs the other to read a checkpoint (checkpoint_io below both)."""
    root = Path(__file__).resolve().parents[1] / "lit_colorize"
    assert len((root / "module.py").read_text().splitlines()) <= 250
    pretrained = (root / "pretrained.py").read_text()
    checkpoint_io = (root / "checkpoint_io.py").read_text()
    assert "lit_colorize.colorizer" not in pretrained and "def read_checkpoint" in checkpoint_io
    assert "lit_colorize.colorizer" not in checkpoint_io and "lit_colorize.pretrained" not in checkpoint_io
