"""Embedding and the word2vec/GloVe text loader."""
import gzip

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxseq.nn import Embedding, FrozenParam, load_word_vectors

VECS = {"the": [0.1, 0.2, 0.3], "cat": [1.0, -1.0, 0.5], "sat": [-0.5, 0.25, 2.0]}


def _write(path, header=False, extra=""):
    lines = [f"{w} " + " ".join(str(v) for v in vec) for w, vec in VECS.items()]
    if header:
        lines.insert(0, f"{len(VECS)} 3")
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


@pytest.mark.parametrize("header", [False, True])
def test_load_both_formats(tmp_path, header):
    path = _write(tmp_path / "v.txt", header=header)
    vocab = ["<pad>", "the", "cat", "dog", "sat"]
    matrix, coverage, missing = load_word_vectors(path, vocab, seed=0)
    assert matrix.shape == (5, 3) and matrix.dtype == np.float32
    assert coverage == pytest.approx(3 / 5)
    assert missing == ["<pad>", "dog"]
    for w, vec in VECS.items():
        np.testing.assert_allclose(matrix[vocab.index(w)], vec)
    again, _, _ = load_word_vectors(path, vocab, seed=0)
    np.testing.assert_array_equal(matrix, again)  # seeded unknowns
    other, _, _ = load_word_vectors(path, vocab, seed=1)
    assert not np.allclose(matrix[0], other[0])


def test_unknown_scale_mapping_vocab_and_gzip(tmp_path):
    path = tmp_path / "v.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(_write(tmp_path / "plain.txt").read_text())
    vocab = {"cat": 0, **{f"unk{i}": i + 1 for i in range(2000)}}
    matrix, coverage, missing = load_word_vectors(path, vocab, dim=3,
                                                  rng=np.random.default_rng(0))
    assert coverage == pytest.approx(1 / 2001) and len(missing) == 2000
    # unknowns are drawn at the found vectors' std (one vector here: "cat")
    assert np.std(matrix[1:]) == pytest.approx(np.std(VECS["cat"]), rel=0.05)
    zeros, _, _ = load_word_vectors(path, ["dog"], unknown_init="zeros")
    np.testing.assert_array_equal(zeros, 0.0)


def test_malformed_and_mismatched_files(tmp_path):
    bad = _write(tmp_path / "bad.txt", extra="dog 1.0 2.0\n")
    with pytest.raises(ValueError, match=r"bad.txt:4: expected 3 values, got 2"):
        load_word_vectors(bad, ["dog"])
    nonnum = _write(tmp_path / "nn.txt", extra="dog 1.0 x 2.0\n")
    with pytest.raises(ValueError, match=r"nn.txt:4: non-numeric"):
        load_word_vectors(nonnum, ["dog"])
    with pytest.raises(ValueError, match="header says dim 3, expected dim=4"):
        load_word_vectors(_write(tmp_path / "h.txt", header=True), ["the"], dim=4)
    with pytest.raises(ValueError, match=r":1: expected 5 values, got 3"):
        load_word_vectors(_write(tmp_path / "d.txt"), ["the"], dim=5)
    with pytest.raises(ValueError, match="unknown_init"):
        load_word_vectors(bad, ["the"], unknown_init="xavier")
    with pytest.raises(ValueError, match="twice"):
        load_word_vectors(bad, ["the", "the"])


def test_embedding_lookup_attend_and_pretrained(tmp_path):
    emb = Embedding(10, 4, rngs=nnx.Rngs(0))
    ids = jnp.array([[1, 2, 3], [0, 0, 9]])
    assert emb(ids).shape == (2, 3, 4)
    assert emb.attend(jnp.ones((2, 4))).shape == (2, 10)
    with pytest.raises(TypeError, match="ids"):
        emb(jnp.ones((2, 3)))

    matrix, _, _ = load_word_vectors(_write(tmp_path / "v.txt"), ["the", "cat", "dog"])
    pre = Embedding.from_pretrained(matrix)
    np.testing.assert_allclose(pre(jnp.array([1])), matrix[1:2])
    assert len(nnx.state(pre, nnx.Param)) > 0
    frozen = Embedding.from_pretrained(matrix, freeze=True)
    np.testing.assert_allclose(frozen(jnp.array([0, 1])), matrix[:2])
    assert not nnx.state(frozen, nnx.Param)  # nothing to train
    assert len(nnx.state(frozen, FrozenParam)) == 1
