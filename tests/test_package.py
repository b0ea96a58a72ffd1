"""The package surface: real constructor signatures, lazily reachable subpackages and modules."""
from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import pydoc
import subprocess
import sys
from pathlib import Path

import pytest
from flax import nnx

REPO = Path(__file__).resolve().parents[1]

# The documented constructor arguments of every public module class (DESIGN.md and the docstrings).
# A new public class must be added here: the discovery test below fails until it is.
DOCUMENTED: dict[str, tuple[str, ...]] = {
    "jaxseq.nn.LSTM": ("in_features", "hidden_size", "num_layers", "bidirectional", "residual",
                       "dilations", "dropout", "dtype", "param_dtype", "unroll", "hoist_input",
                       "backward", "rngs"),
    "jaxseq.nn.GRU": ("in_features", "hidden_size", "num_layers", "bidirectional", "residual",
                      "dilations", "dropout", "dtype", "param_dtype", "unroll", "hoist_input",
                      "backward", "rngs"),
    "jaxseq.nn.MinGRU": ("in_features", "hidden_size", "num_layers", "bidirectional", "residual",
                         "dropout", "mode", "rngs"),
    "jaxseq.nn.MinLSTM": ("in_features", "hidden_size", "num_layers", "bidirectional", "residual",
                          "dropout", "mode", "rngs"),
    "jaxseq.nn.OpParams": ("params",),
    "jaxseq.nn.MultiHeadAttention": ("d_model", "num_heads", "backend", "rope", "dropout", "rngs"),
    "jaxseq.nn.MLP": ("d_model", "rngs"),
    "jaxseq.nn.TransformerBlock": ("d_model", "num_heads", "mlp_ratio", "dropout", "backend",
                                   "cross_attention", "rngs"),
    "jaxseq.nn.TransformerEncoder": ("d_model", "num_heads", "num_layers", "positional", "max_len",
                                     "mlp_ratio", "dropout", "backend", "rngs"),
    "jaxseq.nn.TransformerDecoder": ("d_model", "num_heads", "num_layers", "cross_attention",
                                     "positional", "max_len", "mlp_ratio", "dropout", "backend",
                                     "rngs"),
    "jaxseq.nn.Embedding": ("num_embeddings", "features", "dtype", "param_dtype", "rngs"),
    "jaxseq.models.lm.LanguageModel": ("vocab_size", "kind", "d_model", "num_layers", "dropout",
                                       "num_heads", "dtype", "rngs"),
    "jaxseq.models.classifier.SequenceModel": ("kind", "d_model", "num_layers", "out_features",
                                               "vocab_size", "input_dim", "rngs"),
    "jaxseq.models.forecasters.GlobalForecaster": ("kind", "horizon", "hidden_size", "num_layers",
                                                   "rngs"),
    "jaxseq.models.seq2seq.Seq2SeqAttention": ("src_vocab", "tgt_vocab", "d_model", "encoder_layers",
                                               "decoder_layers", "score", "dropout", "rngs"),
    "jaxseq.models.seq2seq.TransformerSeq2Seq": ("src_vocab", "tgt_vocab", "d_model", "num_heads",
                                                 "encoder_layers", "decoder_layers", "shared_embeddings",
                                                 "tie_embeddings", "rngs"),
    "jaxseq.models.esrnn.ESRNN": ("num_series", "seasonality", "horizon", "input_size",
                                  "dilations", "hidden_size", "rngs"),
}


def _public_module_classes() -> dict[str, type]:
    """Every public nnx.Module class of jaxseq.nn (its __all__) and of the jaxseq.models modules."""
    import jaxseq.models
    import jaxseq.nn

    found = {f"jaxseq.nn.{n}": getattr(jaxseq.nn, n) for n in jaxseq.nn.__all__}
    for info in pkgutil.iter_modules(jaxseq.models.__path__):
        mod = importlib.import_module(f"jaxseq.models.{info.name}")
        for n, obj in vars(mod).items():
            if isinstance(obj, type) and obj.__module__ == mod.__name__ and not n.startswith("_"):
                found[f"{mod.__name__}.{n}"] = obj
    return {k: v for k, v in found.items() if isinstance(v, type) and issubclass(v, nnx.Module)}


def _resolve(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_every_public_module_class_is_listed():
    # A new public module class: decorate it with jaxseq.nn.signature.init_signature (or subclass a
    # decorated one) and list its documented arguments in DOCUMENTED.
    assert set(_public_module_classes()) == set(DOCUMENTED)


@pytest.mark.parametrize("path", sorted(DOCUMENTED))
def test_signature_shows_the_real_arguments(path):
    cls = _resolve(path)
    params = inspect.signature(cls).parameters
    kinds = {p.kind for p in params.values()}
    assert inspect.Parameter.VAR_POSITIONAL not in kinds, inspect.signature(cls)
    assert inspect.Parameter.VAR_KEYWORD not in kinds, inspect.signature(cls)
    missing = [a for a in DOCUMENTED[path] if a not in params]
    assert not missing, f"{path}{inspect.signature(cls)} lacks {missing}"
    assert "self" not in params
    # help() prints the same signature on the class line.
    doc = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    assert f"{cls.__name__}{inspect.signature(cls)}" in doc
    assert f"{cls.__name__}(*args" not in doc


def test_signature_defaults_and_call_signature_of_instances():
    from jaxseq.nn import LSTM, TransformerDecoder

    sig = inspect.signature(LSTM)
    assert sig.parameters["num_layers"].default == 1
    assert sig.parameters["backward"].default == "auto"
    assert sig.parameters["rngs"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["rngs"].default is inspect.Parameter.empty
    # TransformerDecoder forwards **kwargs to its base: the base's keywords are shown instead.
    dec = inspect.signature(TransformerDecoder).parameters
    assert dec["cross_attention"].default is True and dec["positional"].default == "sinusoidal"
    # An instance still shows __call__'s arguments, not the constructor's.
    m = LSTM(2, 3, rngs=nnx.Rngs(0))
    assert list(inspect.signature(m).parameters) == ["x", "lengths", "initial_state"]


def test_user_subclass_inherits_the_fix():
    from jaxseq.nn import GRU

    class MyGRU(GRU):
        def __init__(self, width: int, *, rngs: nnx.Rngs, scale: float = 2.0):
            super().__init__(width, width, rngs=rngs)
            self.scale = scale

    assert list(inspect.signature(MyGRU).parameters) == ["width", "rngs", "scale"]


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)


# One representative module per subpackage (importing every study module would cost seconds).
SUBMODULES = {"ops": ("rnn", "attention", "masks"), "nn": ("recurrent",), "models": ("lm",),
              "data": ("charlm",), "train": ("loop",), "bench": ("timing",), "studies": ("charlm",),
              "interop": ("flax_cells", "torch")}


def test_import_jaxseq_is_cheap_and_reaches_everything_lazily():
    import jaxseq

    assert set(SUBMODULES) == set(jaxseq.SUBPACKAGES)
    chains = [f"jaxseq.{p}.{m}" for p, mods in SUBMODULES.items() for m in mods]
    code = f"""
import sys, time
t = time.perf_counter()
import jaxseq
elapsed = time.perf_counter() - t
heavy = [m for m in ("jax", "flax", "numpy", "optax") if m in sys.modules]
assert not heavy, heavy
assert set(dir(jaxseq)) >= set(jaxseq.SUBPACKAGES)
for chain in {chains!r}:
    obj = jaxseq
    for part in chain.split(".")[1:]:
        obj = getattr(obj, part)
    assert obj is sys.modules[chain], chain
assert jaxseq.ops.rnn.lstm_scan and jaxseq.train.TrainConfig  # a package's own lazy exports stay
for bad in ("jaxseq.nope", "jaxseq.ops.nope", "jaxseq.train.nope"):
    try:
        eval(bad)
    except AttributeError as e:
        assert repr(bad.rsplit(".", 1)[1]) in str(e), e
    else:
        raise AssertionError(bad)
print(f"{{elapsed:.4f}}")
"""
    r = _python(code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert float(r.stdout.strip()) < 0.5  # measured ~4 ms; the bound only catches a heavy import


@pytest.mark.parametrize("package", [
    *SUBMODULES,
])
def test_direct_subpackage_import_reaches_its_modules(package):
    # `import jaxseq.<package> as p; p.<module>` needs the subpackage's own module __getattr__ (or,
    # for jaxseq.nn, eager imports). Calling that __getattr__ directly tests it whatever this process
    # imported before.
    p = importlib.import_module(f"jaxseq.{package}")
    for module in SUBMODULES[package]:
        full = f"jaxseq.{package}.{module}"
        if package == "nn":
            assert getattr(p, module) is sys.modules[full]
            continue
        assert "__getattr__" in vars(p), f"jaxseq.{package} has no module __getattr__"
        assert vars(p)["__getattr__"](module) is importlib.import_module(full)
