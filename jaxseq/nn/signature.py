"""Real constructor signatures for NNX module classes.

``flax.nnx.Module``'s metaclass defines ``__call__(cls, *args, **kwargs)``, and
``inspect.signature(cls)`` (so ``help(cls)``, IDEs and ``pydoc``) reads a metaclass ``__call__``
before the class's ``__init__``: every NNX class shows ``(*args, **kwargs)``. A class attribute
``__signature__`` is read first of all, so :func:`init_signature` installs one that is computed from
the class's own ``__init__`` when it is read.

The attribute is a descriptor, not a stored ``Signature``, because

* it is inherited: a subclass reads *its* ``__init__`` (not its base's), so a decorated base covers
  every subclass, including users' subclasses;
* it is visible on the class only: on an instance it raises ``AttributeError``, so
  ``inspect.signature(module_instance)`` still shows ``__call__``'s arguments.

An ``__init__`` that forwards ``**kwargs`` to its base (``def __init__(self, a, *, b=1, **kwargs)``)
shows the base's keyword arguments in place of ``**kwargs``: that is what it accepts.
"""
from __future__ import annotations

import inspect
from typing import Any, TypeVar

T = TypeVar("T", bound=type)

_KINDS_BEFORE_KWONLY = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                        inspect.Parameter.VAR_POSITIONAL)


def _init_parameters(cls: type) -> list[inspect.Parameter]:
    """``cls.__init__``'s parameters without ``self``, ``**kwargs`` replaced by the base's keywords."""
    init = cls.__init__
    params = list(inspect.signature(init).parameters.values())[1:]
    var_kw = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    if not var_kw:
        return params
    # The first base class (in MRO order) that defines __init__ is where **kwargs goes.
    owner = next((c for c in cls.__mro__ if "__init__" in vars(c)), None)
    base = next((c for c in cls.__mro__[cls.__mro__.index(owner) + 1:] if "__init__" in vars(c)), None)
    if base is None or base is object:
        return params
    inherited = _init_parameters(base)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inherited):
        return params  # the base takes anything too: nothing more precise to show
    names = {p.name for p in params}
    extra = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in inherited
             if p.name not in names and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                   inspect.Parameter.KEYWORD_ONLY)
             # a base positional the subclass fixed (passed positionally) is not a keyword option
             and not (p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.default is p.empty)]
    head = [p for p in params if p.kind in _KINDS_BEFORE_KWONLY]
    kwonly = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    return head + kwonly + extra


class _InitSignature:
    """Class-level ``__signature__``: the signature of the accessing class's ``__init__``."""

    def __get__(self, instance: Any, owner: type) -> inspect.Signature:
        if instance is not None:
            # On an instance, inspect must fall through to __call__.
            raise AttributeError("__signature__")
        return inspect.Signature(_init_parameters(owner))


def init_signature(cls: T) -> T:
    """Class decorator: ``inspect.signature(cls)`` and ``help(cls)`` show ``cls.__init__``'s arguments.

    Apply it to a base class and every subclass is covered. Returns ``cls`` itself.
    """
    if not isinstance(cls, type):
        raise TypeError(f"init_signature: expected a class, got {type(cls).__name__}")
    cls.__signature__ = _InitSignature()  # type: ignore[attr-defined]
    return cls
