"""No private name crosses a module boundary inside the package (issue 34).

An AST scan of every module under ``jaxseq/`` for ``from M import _name`` where ``M`` (relative imports
resolved) is another module of the package: a private name of one module used by another is a shared
name in disguise, and belongs public in its defining module, or in the module that owns the shared job.
Imports anywhere in a module count (functions included), and so does a package ``__init__`` re-exporting
a private name of its own submodule. Not counted: dunder names (``__version__``), a private *submodule*
imported as a module (``from . import _checks``: a module, not a name), imports from outside the
package, and ``import M`` followed by ``M._name`` (attribute use is out of scope).

The whole package must be clean.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple


from package_scan import PACKAGE_DIR, module_files, write_package  # tests/package_scan.py


class Crossing(NamedTuple):
    """One private name imported across modules: `importer` (file:line) takes `name` from `source`."""
    importer: str
    lineno: int
    source: str
    name: str

    def __str__(self) -> str:
        return f"{self.importer}:{self.lineno}: from {self.source} import {self.name}"


def is_private(name: str) -> bool:
    """A single-underscore name (dunders such as ``__version__`` are not private)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve(node: ast.ImportFrom, name: str, is_pkg: bool) -> str:
    """The absolute module that `node` (in module `name`) imports from."""
    if not node.level:
        return node.module or ""
    package = name if is_pkg else name.rpartition(".")[0]
    base = package.split(".") if package else []
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def private_crossings(package_dir: Path = PACKAGE_DIR) -> list[Crossing]:
    """Every ``from M import _name`` in the package where M is another module of the package."""
    modules = module_files(package_dir)
    root = package_dir.parent
    found: list[Crossing] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            src = _resolve(node, name, path.name == "__init__.py")
            if src not in modules or src == name:
                continue
            for alias in node.names:
                if alias.name == "*" or not is_private(alias.name):
                    continue
                if f"{src}.{alias.name}" in modules:  # a private submodule, imported as a module
                    continue
                found.append(Crossing(path.relative_to(root).as_posix(), node.lineno, src, alias.name))
    return sorted(found)


def _describe(crossings: list[Crossing]) -> str:
    return f"{len(crossings)} private name(s) imported across modules:\n" + \
        "\n".join(f"  {c}" for c in crossings)


# ------------------------------------------------------------------------------------------------
# the package


def test_no_private_name_crosses_modules():
    crossings = private_crossings()
    assert not crossings, _describe(crossings)


# ------------------------------------------------------------------------------------------------
# the scanner itself, on a small package written here


def test_scanner_on_a_made_up_package(tmp_path):
    pkg = write_package(tmp_path, {
        "pkg/__init__.py": "from .core import _hidden, public\nfrom . import _internal\n"
                           "from .core import __version__\n",
        "pkg/_internal.py": "def helper():\n    pass\n",
        "pkg/core.py": "__version__ = '1'\n_hidden = 1\npublic = 2\nfrom os import _exit\n"
                       "from .core import _hidden as again  # itself: not a crossing\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/a.py": "def f():\n    from ..core import _hidden\n    from .b import ok, _secret as s\n",
        "pkg/sub/b.py": "import pkg.core\nx = pkg.core._hidden  # attribute use: out of scope\n"
                        "from pkg.core import public\nfrom pkg import _internal\n"
                        "from pkg._internal import _also\n",
    })
    assert [str(c) for c in private_crossings(pkg)] == [
        "pkg/__init__.py:1: from pkg.core import _hidden",
        "pkg/sub/a.py:2: from pkg.core import _hidden",
        "pkg/sub/a.py:3: from pkg.sub.b import _secret",
        "pkg/sub/b.py:5: from pkg._internal import _also",
    ]


def test_is_private():
    assert is_private("_x") and is_private("_X_Y") and is_private("__x")
    assert not is_private("x") and not is_private("__all__") and not is_private("__version__")
