"""The source tree's conventions: imports through the ser_edge namespace only, one way to log."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BARE_NAMES, REPO_ROOT

SOURCE_FOLDERS = ("edge", "models", "export", "benchmarks", "scripts", "tests")
TEXT_SUFFIXES = {".py", ".sh", ".md", ".toml", ".service", ".cfg"}


THIS = Path(__file__).resolve()  # its own docstrings quote what it looks for


def python_files() -> list[Path]:
    return sorted(p for folder in SOURCE_FOLDERS for p in (REPO_ROOT / folder).rglob("*.py") if p.resolve() != THIS)


def bare_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in BARE_NAMES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in BARE_NAMES:
                found.append(node.module)
    return found


def test_nothing_imports_the_bare_folder_names():
    offenders = {str(p.relative_to(REPO_ROOT)): bare_imports(p) for p in python_files()}
    assert not {k: v for k, v in offenders.items() if v}


def test_no_code_string_or_document_runs_a_bare_module():
    """``python -m`` or a ``"-m"`` argument with a bare package name, and imports inside code strings."""
    names = "|".join(BARE_NAMES)
    pattern = re.compile(rf"""-m[\s"',]+({names})\.\w|\bfrom ({names})(\.\w+)* import\b|^\s*import ({names})\b""", re.M)
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for name in listed:
        path = REPO_ROOT / name
        if path.suffix in TEXT_SUFFIXES and path.is_file() and path.resolve() != THIS:
            hits += [f"{name}: {m.group(0).strip()}" for m in pattern.finditer(path.read_text(errors="replace"))]
    assert not hits


def test_the_bare_names_cannot_be_imported_while_testing():
    for name in BARE_NAMES:
        with pytest.raises(ImportError, match=f"ser_edge.{name}"):
            __import__(name)
    assert not [m for m in sys.modules if m.split(".")[0] in BARE_NAMES]


def test_one_logging_convention():
    """Module loggers (getLogger(__name__)) everywhere; handlers only through ser_edge.edge.command in entry points."""
    for path in python_files():
        text = path.read_text()
        relative = path.relative_to(REPO_ROOT)
        assert "basicConfig" not in text, relative
        names = re.findall(r"getLogger\(([^)]*)\)", text)
        if path.parts[-2] != "tests" and relative.as_posix() != "edge/command.py":
            assert all(n == "__name__" for n in names), (relative, names)
