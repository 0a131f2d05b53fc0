"""Import direction: the physics package depends only on config, units and errors (a leaf module)."""

from __future__ import annotations

import ast
from pathlib import Path

import gridtwin_lib.physics as physics

ALLOWED = {"config", "units", "errors", "physics"}


def _gridtwin_imports(path: Path) -> set[str]:
    """First component (below gridtwin_lib) of every gridtwin_lib module a physics file imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").startswith("gridtwin_lib"):
                parts = node.module.split(".")[1:]
                out.add(parts[0] if parts else "")
            elif node.level == 1:  # a sibling inside physics
                out.add("physics")
            elif node.level == 2:
                out.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("gridtwin_lib.")}
    return out


def test_physics_imports_only_the_base_layer():
    files = sorted(Path(physics.__file__).parent.glob("*.py"))
    assert len(files) >= 5
    bad = {f.name: sorted(_gridtwin_imports(f) - ALLOWED) for f in files}
    assert not any(bad.values()), f"physics modules import outside config/units/errors: {bad}"
