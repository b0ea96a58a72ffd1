"""The pure steps and the parallel wrappers, on a tiny NNX model and the 4 fake CPU devices."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from _train_helpers import TinyLM
from jaxseq.data import charlm
from jaxseq.train.optim import make_optimizer
from jaxseq.train.parallel import make_parallel
from jaxseq.train.state import create_train_state
from jaxseq.train.steps import eval_step, loss_sums, train_step

VOCAB = 65
BATCH, SEQ = 8, 16


@pytest.fixture(scope="module")
def data():
    return charlm.load_tinyshakespeare()


def _setup(*, dropout=0.0, lr=1e-2, steps=100, seed=0, **step_kw):
    model = TinyLM(VOCAB, d=16, dropout=dropout, rngs=nnx.Rngs(seed))
    tx, schedule = make_optimizer(lr, total_steps=steps, warmup_steps=2)
    model_def, state = create_train_state(model, tx, seed)
    train_fn = lambda s, b, axis_name=None: train_step(  # noqa: E731
        s, b, model=model_def, tx=tx, schedule=schedule, axis_name=axis_name, **step_kw
    )
    eval_fn = lambda p, b, axis_name=None: eval_step(p, b, model=model_def, axis_name=axis_name)  # noqa: E731
    return model_def, state, train_fn, eval_fn


def _batch(data, step):
    return charlm.batch_at(data.train, seed=0, step=step, batch_size=BATCH, seq_len=SEQ)


def _run(mode, data, n_steps=4):
    _, state0, train_fn, eval_fn = _setup()
    state0 = jax.device_get(state0)  # a host copy: the steps donate their input state
    par = make_parallel(mode, train_fn, eval_fn)
    state = par.place_state(state0)
    losses = []
    for k in range(n_steps):
        state, m = par.train_step(state, par.place_batch(_batch(data, k)))
        m = par.fetch(m)  # blocks on every step (CPU collectives time out when many are queued)
        losses.append(m["loss_sum"] / m["token_count"])
    ev = par.fetch(par.eval_step(par.params_of(state), par.place_batch(_batch(data, 99))))
    return state0, par.host_state(state), losses, ev, par


def test_parallel_modes_agree_update_params_and_compile_once(data):
    results = {mode: _run(mode, data) for mode in ("jit", "pmap", "sharded")}
    ref_losses = results["jit"][2]
    assert ref_losses[-1] < ref_losses[0]
    for mode, (state0, state, losses, ev, par) in results.items():
        # Parameters moved, and the step counter advanced.
        delta = jax.tree.map(lambda a, b: float(jnp.abs(jnp.asarray(a) - jnp.asarray(b)).max()),
                             state0.params, state.params)
        assert all(d > 0 for d in jax.tree.leaves(delta)), (mode, delta)
        assert int(state.step) == 4
        # One trace (= one compilation) for four steps.
        assert par.trace_counts == {"train": 1, "eval": 1}, (mode, par.trace_counts)
        # Same loss curve on the same data and seed (float rounding only: reduction order differs).
        np.testing.assert_allclose(losses, ref_losses, rtol=2e-5, err_msg=mode)
        assert ev["token_count"] == BATCH * SEQ
        np.testing.assert_allclose(ev["loss_sum"], results["jit"][3]["loss_sum"], rtol=2e-5)
    jit_train = results["jit"][4].train_step
    assert jit_train._cache_size() == 1


def test_tiny_batch_overfits(data):
    _, state, train_fn, _ = _setup(lr=3e-2, steps=60)
    step = jax.jit(train_fn)
    batch = _batch(data, 0)
    losses = []
    for _ in range(60):
        state, m = step(state, batch)
        losses.append(float(m["loss_sum"] / m["token_count"]))
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_step_options_match_the_plain_step(data):
    """Gradient accumulation, rematerialisation and bfloat16 compute against the plain float32 step."""
    batch = _batch(data, 0)

    def one_step(**kw):
        _, state, train_fn, _ = _setup(**kw)
        return jax.jit(train_fn)(state, batch)

    ref_state, ref = one_step()
    # Accumulating 4 micro-batches is the same update as the full batch.
    acc_state, acc = one_step(grad_accum=4)
    np.testing.assert_allclose(acc["loss_sum"], ref["loss_sum"], rtol=1e-5)
    np.testing.assert_allclose(acc["grad_norm"], ref["grad_norm"], rtol=1e-4)
    for a, b in zip(jax.tree.leaves(acc_state.params), jax.tree.leaves(ref_state.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # Rematerialisation changes memory, not results.
    _, rm = one_step(remat="full")
    np.testing.assert_allclose(rm["loss_sum"], ref["loss_sum"], rtol=1e-6)
    np.testing.assert_allclose(rm["grad_norm"], ref["grad_norm"], rtol=1e-5)
    # bfloat16 compute from float32 master weights: float32 params and loss, close to float32's.
    bf_state, bm = one_step(compute_dtype=jnp.bfloat16)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(bf_state.params))
    assert bm["loss_sum"].dtype == jnp.float32
    np.testing.assert_allclose(bm["loss_sum"], ref["loss_sum"], rtol=2e-2)


def test_dropout_key_depends_on_step_only(data):
    model_def, state, _, _ = _setup(dropout=0.5)
    batch = _batch(data, 0)

    @jax.jit
    def losses(p, k):
        train = [loss_sums(p, batch, jax.random.fold_in(k, i), model=model_def, train=True)[0] for i in (1, 1, 2)]
        return jnp.stack(train + [loss_sums(p, batch, None, model=model_def, train=False)[0]])

    a, b, c, ev = np.asarray(losses(state.params, jax.random.PRNGKey(0)))
    assert a == b and a != c  # reproducible from (rng, step), different across steps
    assert ev not in (a, c)  # the eval graph has dropout off


def _op_names(fn, *args) -> set[str]:
    """The op_name paths XLA keeps in the ops' metadata (what a profiler trace maps its ops to)."""
    import re

    text = jax.jit(fn).lower(*args).as_text(debug_info=True)
    return set(re.findall(r'loc\("([^"]*)"', text))


def test_steps_name_their_parts_for_the_profiler(data):
    from jaxseq.bench.traces import part_of

    _, state, train_fn, eval_fn = _setup()
    batch = {k: jnp.asarray(v) for k, v in _batch(data, 0).items()}
    parts = {part_of(n) for n in _op_names(train_fn, state, batch)}
    assert {"loss", "optimizer_update"} <= parts and "eval" not in parts, parts
    # The backward pass of the cross-entropy counts as "loss" too.
    assert any("transpose(jvp(loss))" in n for n in _op_names(train_fn, state, batch))
    # Every op of an evaluation step is "eval" (the outermost scope), loss included.
    eval_names = [n for n in _op_names(eval_fn, state.params, batch) if n.startswith("jit(")]
    assert any("/loss/" in n for n in eval_names)
    assert {part_of(n) for n in eval_names if "/" in n} == {"eval"}, eval_names
