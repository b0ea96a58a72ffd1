"""jaxseq: sequence models in JAX/Flax NNX, and a measured study of LSTMs against Transformers.

Subpackages load on first attribute access, so ``import jaxseq`` stays cheap (it imports no JAX)
and ``import jaxseq; jaxseq.ops.rnn.lstm_scan`` works: ``ops`` (pure JAX), ``nn`` (Flax NNX
layers), ``models``, ``data``, ``train``, ``bench`` (measuring harness), ``studies``, ``interop``.
A subpackage's own modules are reached the same way (``jaxseq.ops.attention``,
``jaxseq.train.loop``): each is imported when first read as an attribute.
"""
from __future__ import annotations

import importlib as _importlib
from types import ModuleType as _ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `typing` names only for annotations: keep `import jaxseq` to a few ms
    from typing import Any, Callable

__version__ = "0.1.0"

SUBPACKAGES: tuple[str, ...] = ("ops", "nn", "models", "data", "train", "bench", "studies", "interop")
# Subpackages are left out of __all__: `from jaxseq import *` should not import all of them.
__all__ = ["SUBPACKAGES", "__version__", "submodule_getattr"]


def submodule_getattr(package: str, path: Any, fallback: Callable[[str], Any] | None = None
                      ) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that imports ``package``'s submodules on first access.

    ``path`` is the package's ``__path__``; names are listed from it only when an unknown attribute
    is read. ``fallback(name)``, if given, answers names that are not submodules (a package's own
    lazy attributes); otherwise they raise ``AttributeError``.
    """
    names: set[str] | None = None

    def __getattr__(name: str) -> Any:
        nonlocal names
        if names is None:
            import pkgutil

            names = {m.name for m in pkgutil.iter_modules(path)}
        if name in names:
            return _importlib.import_module(f"{package}.{name}")  # also binds it on the package
        if fallback is not None:
            return fallback(name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def _with_submodules(module: _ModuleType) -> _ModuleType:
    """Give a subpackage without a module ``__getattr__`` one that imports its submodules.

    Subpackages normally declare ``__getattr__ = submodule_getattr(__name__, __path__)`` themselves
    (which also serves ``import jaxseq.ops as ops; ops.rnn``); this covers one that does not yet,
    for the ``jaxseq.<subpackage>.<module>`` chain.
    """
    if "__getattr__" not in vars(module) and hasattr(module, "__path__"):
        module.__getattr__ = submodule_getattr(module.__name__, module.__path__)  # type: ignore[attr-defined]
    return module


def __getattr__(name: str) -> Any:
    if name in SUBPACKAGES:
        return _with_submodules(_importlib.import_module(f"{__name__}.{name}"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *SUBPACKAGES})
