"""The study contract: every registered study imports, registers exactly its commands and has a
`write_report`; the package's layers import one way only (an AST scan of every import, lazy ones
inside functions included)."""
from __future__ import annotations

import argparse
import ast
import importlib
import inspect
from pathlib import Path

import pytest

from jaxseq.studies import STUDIES, study
from jaxseq.studies.base import REPO_PROFILES, Study

PKG = Path(__file__).resolve().parents[2] / "jaxseq"

# ops <- nn <- models <- data/train <- bench <- studies <- cli: a module may import its own layer and
# the layers before it. interop (torch weight conversion, built on nn) sits with models.
RANK = {"ops": 0, "nn": 1, "models": 2, "interop": 2, "data": 3, "train": 3, "bench": 4,
        "studies": 5, "cli": 6}


@pytest.mark.parametrize("spec", STUDIES, ids=lambda s: s.name)
def test_study_module_registers_its_commands_and_reports(spec):
    module = importlib.import_module(spec.module)
    assert callable(getattr(module, "add_parser", None)), spec.module
    assert callable(getattr(module, "write_report", None)), spec.module
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    module.add_parser(sub)
    assert set(sub.choices) == set(spec.commands)
    for cmd in spec.commands:  # every command has something to run
        assert callable(sub.choices[cmd].get_default("func")), cmd
    # The typed contract (jaxseq.studies.base.Study): presets with a smoke preset, run_preset,
    # write_folder_report, add_parser; one signature each.
    assert isinstance(module, Study), spec.module
    assert "smoke" in module.PRESETS, spec.module
    run = list(inspect.signature(module.run_preset).parameters.values())
    assert [p.name for p in run] == ["preset", "out"] and run[1].default is None, spec.module
    # One signature for every study's report of a results folder (what `jaxseq.studies.results.regenerate`
    # and the byte-identical regeneration test call).
    sig = inspect.signature(module.write_folder_report)
    params = list(sig.parameters.values())
    assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, spec.module
    assert params[1].name == "plots" and params[1].kind is inspect.Parameter.KEYWORD_ONLY, spec.module
    assert params[1].default is True and all(p.default is not inspect.Parameter.empty for p in params[1:])
    # Every study has committed results in its folder of the one layout, profiles/<machine>/<folder>/.
    assert list(REPO_PROFILES.glob(f"*/{spec.folder}")), spec.folder


def test_cli_has_every_study_command():
    from jaxseq.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    want = {c for s in STUDIES for c in s.commands} | {"bench", "train", "sample"}
    assert want <= set(sub.choices)
    assert study("scaling").folder == "scaling" and study("forecasting").folder == "forecast"
    with pytest.raises(ValueError, match="study must be one of"):
        study("nope")


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def _imports(path: Path, pkg: Path) -> list[tuple[str, int]]:
    """(absolute module imported, line) for every import in the file, relative ones resolved."""
    rel = path.relative_to(pkg.parent).with_suffix("")
    parts = list(rel.parts)
    package = parts if parts[-1] == "__init__" else parts[:-1]
    package = [p for p in package if p != "__init__"]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from jaxseq import nn` imports jaxseq.nn: count the names as modules too.
            found.append((mod, node.lineno))
            if mod == "jaxseq":
                found += [(f"jaxseq.{a.name}", node.lineno) for a in node.names]
    return found


def _violations(pkg: Path = PKG) -> list[str]:
    bad = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg.parent).with_suffix("")
        me = ".".join(p for p in rel.parts if p != "__init__")
        src = _layer(me)
        for mod, line in _imports(path, pkg):
            where = f"{path.relative_to(pkg.parent)}:{line} imports {mod}"
            if src == "ops" and mod.split(".")[0] == "flax":
                bad.append(where + " (jaxseq.ops is pure JAX)")
            if not mod.startswith("jaxseq.") or src not in RANK:
                continue
            dst = _layer(mod)
            if dst in RANK and RANK[dst] > RANK[src]:
                bad.append(where + f" ({src} must not import {dst})")
    return bad


def test_layers_import_one_way():
    assert _violations() == []


def test_the_layer_scan_can_fail(tmp_path):
    # The scan sees lazy imports inside functions, relative imports and `from jaxseq import x`.
    fake = tmp_path / "jaxseq"
    for layer, body in (("bench", "def f():\n    from jaxseq.studies import base\n"),
                        ("ops", "from flax import nnx\n"),
                        ("nn", "from ..models import lm\n"),
                        ("data", "from jaxseq import cli\n")):
        (fake / layer).mkdir(parents=True)
        (fake / layer / "__init__.py").write_text("")
        (fake / layer / "x.py").write_text(body)
    text = "\n".join(_violations(fake))
    assert "bench must not import studies" in text
    assert "jaxseq.ops is pure JAX" in text
    assert "nn must not import models" in text
    assert "data must not import cli" in text


def test_run_preset_measures_and_reports(tmp_path):
    # The contract's entry point end to end on the cheapest study (the others' smoke presets run in
    # their own tests through the same functions run_preset calls).
    from jaxseq.studies import forecasting

    report = forecasting.run_preset("smoke", tmp_path / "fc")
    assert report == tmp_path / "fc" / "REPORT.md" and "| naive2 |" in report.read_text()
    with pytest.raises(ValueError, match="preset must be one of"):
        forecasting.run_preset("nope", tmp_path)
