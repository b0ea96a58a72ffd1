"""What the package-wide AST scans share (tests/test_import_graph.py, tests/test_private_names.py): the
package's modules by dotted name, and a small made-up package to test a scanner on."""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "jaxseq"


def module_files(package_dir: Path) -> dict[str, Path]:
    """{dotted module name: file} of every module under `package_dir` (a package's own is its __init__)."""
    root = package_dir.parent
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def write_package(root: Path, files: dict[str, str]) -> Path:
    """Write `files` ({relative path: text}) under `root`; return `root/pkg`, the made-up package."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root / "pkg"
