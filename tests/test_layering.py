"""Data flows one way: the coder and the container know nothing of PyTorch."""
import ast
from pathlib import Path

import licodec

ROOT = Path(licodec.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
    return names


def test_coding_and_bitstream_do_not_import_torch_or_upper_layers():
    for package in ("coding", "bitstream"):
        for path in (ROOT / package).glob("*.py"):
            for name in imported_modules(path):
                assert not name.startswith("torch"), f"{path.name} imports {name}"
                if name.startswith(".."):
                    assert name in ("..errors",), f"{package}/{path.name} imports {name}"


def test_transforms_and_entropy_models_do_not_touch_bitstreams():
    for package in ("layers", "entropy", "models"):
        for path in (ROOT / package).glob("*.py"):
            for name in imported_modules(path):
                assert "bitstream" not in name and "codec" not in name, f"{path} imports {name}"
