"""The package's import directions: the engine and the tasks meet only in the contract.

``pipejit.engine`` imports no task (nor the registry or factory above it); no task
imports the engine; the contract and the kernels import neither; and the
transformers internals pipejit relies on are reached through ``pipejit.compat`` alone.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipejit"
# (package or module, the pipejit modules it must never import)
FORBIDDEN = {
    "engine": ("pipejit.tasks", "pipejit.registry", "pipejit.factory"),
    "tasks": ("pipejit.engine", "pipejit.registry", "pipejit.factory"),
    "kernels": ("pipejit.engine", "pipejit.tasks", "pipejit.registry", "pipejit.factory"),
    "contract.py": ("pipejit.engine", "pipejit.tasks", "pipejit.registry", "pipejit.factory"),
    "compat.py": ("pipejit.engine", "pipejit.tasks", "pipejit.registry", "pipejit.factory"),
}
INTERNALS = re.compile(
    r"\._(sanitize_parameters|prepare_generate_kwargs|prepare_generation_config|"
    r"compile_all_devices|get_feat_extract_output_lengths)\b"
)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def files_of(part: str) -> list[Path]:
    target = PACKAGE / part
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_import_directions(part):
    files = files_of(part)
    assert files, f"nothing found for {part}"
    broken = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in files
        for name in sorted(imported_modules(path))
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[part])
    ]
    assert not broken, "\n".join(broken)


def test_the_import_check_sees_a_violation(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from pipejit.tasks.fill_mask import FillMask\n")
    assert "pipejit.tasks.fill_mask" in imported_modules(sample)


def test_transformers_internals_only_through_compat():
    users = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if path.name != "compat.py" and INTERNALS.search(path.read_text())
    ]
    assert not users, f"transformers internals used outside pipejit/compat.py: {users}"
