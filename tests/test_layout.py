"""The import direction of DESIGN.md: kernels -> numpy/numba/math; schemas -> pyarrow."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {
    "kernels": {"numpy", "numba", "math", "__future__", "kernels", "typing", "collections"},
    "schemas": {"pyarrow", "__future__", "schemas", "typing"},
}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_stay_in_their_lane(package):
    stray = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else [package]
            else:
                continue
            for name in names:
                if name.split(".")[0] not in ALLOWED[package]:
                    stray.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not stray, "\n".join(stray)
