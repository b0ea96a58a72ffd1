"""What installing jaxseq needs: pyproject.toml is the only list of dependencies, its core is jax, flax,
optax and numpy, and the core modules (jaxseq.nn, jaxseq.ops, jaxseq.models) import and run without
any extra."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]

CORE = {"jax", "flax", "optax", "numpy"}

# What the extras provide, by top-level import name; none of it may be needed by the core modules.
EXTRA_MODULES = ("tensorboard", "tensorboardX", "tensorboard_plugin_profile", "matplotlib",
                 "sentencepiece", "sacrebleu", "statsforecast", "dask", "distributed", "torch",
                 "orbax", "tqdm")

# The import names of requirements whose import name is not the distribution name.
IMPORT_NAMES = {"orbax-checkpoint": ("orbax.checkpoint",), "tensorboardX": ("tensorboardX",),
                "tensorboard-plugin-profile": ("tensorboard_plugin_profile",),
                "pytest-xdist": ("xdist",), "dask[distributed]": ("dask", "distributed")}

# The same sitecustomize pattern as tests/gpu_image.py, blocking every extra's modules.
BLOCKER = f"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRA_MODULES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Block())
"""


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    """The distribution name of a PEP 508 requirement, extras kept: 'dask[distributed]>=2024.1'."""
    return re.match(r"\s*([A-Za-z0-9._-]+(\[[^\]]*\])?)", requirement).group(1)


def _bare(name: str) -> str:
    return name.split("[")[0].lower().replace("_", "-")


def _expand(extra: str, extras: dict[str, list[str]]) -> list[str]:
    """An extra's requirements, with `jaxseq[a,b]` self-references replaced by those extras'."""
    out = []
    for req in extras[extra]:
        name = _name(req)
        if _bare(name) == "jaxseq":
            for sub in name[name.index("[") + 1:-1].split(","):
                out += _expand(sub.strip(), extras)
        else:
            out.append(req)
    return out


def test_core_dependencies_are_jax_flax_optax_numpy_only():
    deps = _project()["dependencies"]
    assert {_bare(_name(d)) for d in deps} == CORE, deps
    assert sorted(deps) == sorted(["jax>=0.10", "flax>=0.12", "optax>=0.2.8", "numpy>=1.26"])


def test_pyproject_is_the_single_source():
    assert not list(REPO.glob("requirements*.txt")), "dependencies belong in pyproject.toml"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\):.*pyproject\.toml", makefile, re.M)
    assert "pip install -q -e '.[all]'" in makefile


def test_extras_are_as_documented_and_installed_here():
    extras = _project()["optional-dependencies"]
    assert set(extras) == {"train", "study", "dev", "all"}
    names = {e: {_bare(_name(r)) for r in _expand(e, extras)} for e in extras}
    assert names["train"] == {"orbax-checkpoint", "tensorboard", "tensorboardx", "tqdm"}
    assert names["study"] == names["train"] | {"matplotlib", "sentencepiece", "sacrebleu",
                                               "statsforecast", "dask", "tensorboard-plugin-profile"}
    assert names["dev"] == {"pytest", "pytest-xdist", "torch"}
    assert names["all"] == names["study"] | names["dev"]
    assert "torch==2.13.0" in extras["dev"]
    # Every extra's package is installed in this venv (`make test` installs `.[all]`) and importable;
    # find_spec instead of importing keeps torch and TensorBoard (seconds each) out of this process.
    for req in _expand("all", extras):
        name = _name(req)
        importlib.metadata.version(_bare(name))  # raises PackageNotFoundError when not installed
        for module in IMPORT_NAMES.get(name, (_bare(name).replace("-", "_"),)):
            assert importlib.util.find_spec(module) is not None, (req, module)


def test_core_modules_work_without_any_extra(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    code = f"""
import importlib, sys
for blocked in {EXTRA_MODULES!r}:  # the blocker works
    try:
        importlib.import_module(blocked)
    except ModuleNotFoundError:
        pass
    else:
        raise AssertionError(blocked)
import jax.numpy as jnp
from flax import nnx
import jaxseq.nn, jaxseq.ops, jaxseq.models
lstm = jaxseq.nn.LSTM(4, 8, rngs=nnx.Rngs(0))
out = lstm(jnp.ones((2, 3, 4)))
y = out[0] if isinstance(out, tuple) else out
assert y.shape == (2, 3, 8), y.shape
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({EXTRA_MODULES!r}))
assert not loaded, loaded
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
           "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=180, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]
