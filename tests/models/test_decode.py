"""Greedy and beam search over a cache pytree (jaxseq.models.decode), against exhaustive search."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseq.models import decode as D

V, BOS, EOS = 6, 2, 3


def _history_model(seed):
    """log p(next | whole prefix): the cache holds a hash of the prefix, so a wrong beam reorder shows."""
    table = jax.nn.log_softmax(jax.random.normal(jax.random.key(seed), (97, V)) * 2.0, axis=-1)

    def step(tokens, cache, t):
        h = (cache["h"] * 7 + tokens + 1) % 97
        return table[h], {"h": h, "row": cache["row"]}

    def logp_of(seq):  # seq without BOS: sum of log p(token | prefix)
        h, total, prev = 0, 0.0, BOS
        for tok in seq:
            h = (h * 7 + prev + 1) % 97
            total += float(table[h, tok])
            prev = tok
        return total

    return step, logp_of


def _cache(batch, offset):
    return {"h": jnp.full((batch,), 0, jnp.int32) + offset, "row": jnp.arange(batch)}


def test_greedy_follows_argmax_and_pads_after_eos():
    step, logp_of = _history_model(0)
    out = np.asarray(D.greedy_search(step, _cache(1, 0), batch_size=1, max_len=6))[0]
    h, prev, want = 0, BOS, []
    table_step = jax.jit(step)
    cache = _cache(1, 0)
    for t in range(6):
        lp, cache = table_step(jnp.array([prev]), cache, t)
        lp = np.asarray(lp[0])
        if t == 5:
            lp = np.where(np.arange(V) == EOS, 0.0, -1e9)
        prev = int(lp.argmax())
        want.append(prev)
        if prev == EOS:
            break
    want += [0] * (6 - len(want))
    assert out.tolist() == want


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_equals_exhaustive_search(seed):
    step, logp_of = _history_model(seed)
    L = 3
    best, best_score = None, -np.inf
    for n in range(1, L + 1):  # every sequence that ends with its first EOS within L tokens
        for body in itertools.product([t for t in range(V) if t != EOS], repeat=n - 1):
            seq = (*body, EOS)
            s = logp_of(seq)  # alpha = 0: plain log-probability
            if s > best_score:
                best, best_score = seq, s
    seqs, scores = D.beam_search(step, _cache(1, 0), batch_size=1, max_len=L, beam_size=V ** 2, alpha=0.0)
    got = [t for t in np.asarray(seqs)[0, 0].tolist()]
    assert tuple(got[:len(best)]) == best and all(t == 0 for t in got[len(best):])
    assert float(scores[0, 0]) == pytest.approx(best_score, abs=1e-4)
    sc = np.asarray(scores[0])
    sc = sc[np.isfinite(sc)]
    assert len(sc) == 1 + (V - 1) + (V - 1) ** 2  # every possible finished sequence, best first
    assert np.all(np.diff(sc) <= 1e-6)


def test_beam_of_one_equals_greedy_per_row():
    step, _ = _history_model(3)
    cache = {"h": jnp.array([0, 5, 11, 40], jnp.int32), "row": jnp.arange(4)}
    g = D.greedy_search(step, cache, batch_size=4, max_len=7)
    b, _ = D.beam_search(step, cache, batch_size=4, max_len=7, beam_size=1, alpha=0.6)
    assert np.array_equal(np.asarray(g), np.asarray(b)[:, 0])


def test_rows_are_independent_and_cache_rows_stay_with_their_batch_row():
    # The rows start from different prefix hashes: a cache row moved to another batch row changes the result.
    step, _ = _history_model(4)
    cache = {"h": jnp.array([0, 9], jnp.int32), "row": jnp.arange(2)}
    both, _ = D.beam_search(step, cache, batch_size=2, max_len=6, beam_size=3)
    for r in range(2):
        one, _ = D.beam_search(step, jax.tree.map(lambda x: x[r:r + 1], cache), batch_size=1, max_len=6, beam_size=3)
        assert np.array_equal(np.asarray(both)[r], np.asarray(one)[0])



def test_max_lengths_force_eos():
    def never_eos(tokens, cache, t):
        lp = jnp.full((tokens.shape[0], V), -5.0).at[:, EOS].set(-50.0).at[:, 4].set(-0.1)
        return lp, cache

    cache = {"x": jnp.zeros((3,))}
    g = np.asarray(D.greedy_search(never_eos, cache, batch_size=3, max_len=8, max_lengths=jnp.array([2, 5, 8])))
    assert g.tolist() == [[4, EOS, 0, 0, 0, 0, 0, 0], [4, 4, 4, 4, EOS, 0, 0, 0], [4] * 7 + [EOS]]
    b, _ = D.beam_search(never_eos, cache, batch_size=3, max_len=8, beam_size=2, max_lengths=jnp.array([2, 5, 8]))
    assert np.array_equal(np.asarray(b)[:, 0], g)
    lim = D.max_lengths_from_ratio(jnp.array([1, 10, 100]), 1.5, 2, 50)
    assert np.asarray(lim).tolist() == [4, 17, 50]


def test_bad_arguments():
    step, _ = _history_model(0)
    with pytest.raises(ValueError, match="beam_size"):
        D.beam_search(step, _cache(1, 0), batch_size=1, max_len=3, beam_size=0)
    with pytest.raises(ValueError, match="max_lengths"):
        D.greedy_search(step, _cache(2, 0), batch_size=2, max_len=3, max_lengths=jnp.array([1, 2, 3]))
    with pytest.raises(ValueError, match="bos and eos"):
        D.greedy_search(step, _cache(1, 0), batch_size=1, max_len=3, bos=3, eos=3)


def test_a_custom_reorder_that_leaves_constants_in_place_gives_the_same_search():
    """reorder_cache may skip per-sentence constants: same sequences and scores as gathering every leaf."""
    step, _ = _history_model(3)
    calls = []

    def reorder(cache, index):
        calls.append(index.shape)
        return {"h": cache["h"][index], "row": cache["row"]}  # "row" is the same for a sentence's beams

    kw = dict(batch_size=2, max_len=5, beam_size=3)
    want = D.beam_search(step, _cache(2, 5), **kw)
    got = D.beam_search(step, _cache(2, 5), reorder_cache=reorder, **kw)
    assert calls == [(6,)]  # traced once, with batch * beam rows
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    # the default is gather_rows: every leaf follows its hypotheses
    tree = {"a": jnp.arange(6) * 10, "b": jnp.arange(12).reshape(6, 2)}
    moved = D.gather_rows(tree, jnp.array([1, 1, 0, 5, 4, 3]))
    assert moved["a"].tolist() == [10, 10, 0, 50, 40, 30] and moved["b"][0].tolist() == [2, 3]
