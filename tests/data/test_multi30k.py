"""Multi30k loader, tokenizer and length buckets (jaxseq.data.multi30k)."""
import shutil

import numpy as np
import pytest

from jaxseq.data import multi30k as M
from jaxseq.data.m4 import ChecksumError


def test_shipped_splits_verified_and_aligned():
    for split, n in (("train", 29000), ("val", 1014), ("test_2016_flickr", 1000)):
        en, de = M.load_split(split)
        assert len(en) == len(de) == n
    en, de = M.load_split("val", src="de", tgt="en")
    assert en[0] != de[0] and all(s for s in en)


def test_shipped_file_changed_is_refused(tmp_path, monkeypatch):
    for name in M.SHIPPED_SHA256:
        shutil.copy(M.SHIPPED_DIR / name, tmp_path / name)
    with open(tmp_path / "val.de", "a") as f:
        f.write("ein Satz mehr\n")
    monkeypatch.setattr(M, "SHIPPED_DIR", tmp_path)
    with pytest.raises(ChecksumError, match="val.de"):
        M.load_split("val")
    M.load_split("test_2016_flickr")  # untouched files still load


def test_user_folder_taken_as_given_and_checked_for_alignment(tmp_path):
    (tmp_path / "mine.en").write_text("a cat .\na dog .\n")
    (tmp_path / "mine.de").write_text("eine Katze .\nein Hund .\n")
    assert M.load_split("mine", data_dir=tmp_path) == (["a cat .", "a dog ."], ["eine Katze .", "ein Hund ."])
    (tmp_path / "bad.en").write_text("one\ntwo\n")
    (tmp_path / "bad.de").write_text("eins\n")
    with pytest.raises(ValueError, match="en has 2 lines but de has 1"):
        M.load_split("bad", data_dir=tmp_path)
    (tmp_path / "empty.en").write_text("")
    (tmp_path / "empty.de").write_text("")
    with pytest.raises(ValueError, match="empty"):
        M.load_split("empty", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.en"):
        M.load_split("missing", data_dir=tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        M.load_split("test_2017")


@pytest.fixture(scope="module")
def small_corpus():
    en, de = M.load_split("val")
    return en, de


def test_tokenizer_deterministic_and_exact(small_corpus, tmp_path):
    en, de = small_corpus
    a = M.train_tokenizer(en + de, vocab_size=500)
    b = M.train_tokenizer(en + de, vocab_size=500)
    assert a.model_proto == b.model_proto
    ids = a.encode(de[:20])
    assert all(i.dtype == np.int32 and i.min() > M.EOS for i in ids)
    assert [a.decode(i) for i in ids] == de[:20]
    # decode stops at EOS and drops BOS/PAD
    assert a.decode([M.BOS, *ids[0], M.EOS, *ids[1]]) == de[0]
    with pytest.raises(TypeError, match="list of strings"):
        a.encode("one sentence")


def test_cached_tokenizer_reuses_only_a_matching_cache(small_corpus, tmp_path):
    en, de = small_corpus
    path = tmp_path / "run" / "spm.model"
    tok = M.cached_tokenizer(path, en, vocab_size=300)
    stamp = path.stat().st_mtime_ns
    assert M.cached_tokenizer(path, en, vocab_size=300).model_proto == tok.model_proto
    assert path.stat().st_mtime_ns == stamp  # loaded, not retrained
    other = M.cached_tokenizer(path, de, vocab_size=300)  # other text: retrained, replaced
    assert other.model_proto != tok.model_proto
    assert M.Tokenizer.load(path).model_proto == other.model_proto


def _pairs(rng, n, hi):
    src = [rng.integers(4, 50, size=rng.integers(1, hi)).astype(np.int32) for _ in range(n)]
    tgt = [rng.integers(4, 50, size=rng.integers(1, hi)).astype(np.int32) for _ in range(n)]
    return src, tgt


def test_batches_cover_every_pair_once_with_bucket_shapes():
    rng = np.random.default_rng(0)
    src, tgt = _pairs(rng, 300, 30)
    bounds = (8, 16, 32)
    batches = M.make_batches(src, tgt, tokens_per_batch=128, boundaries=bounds, seed=1)
    seen = []
    for b in batches:
        rows, width = b["src"].shape
        assert width in bounds and rows == 128 // width
        assert all(b[k].shape == (rows, width) for k in ("tgt_in", "tgt_out"))
        for r in range(rows):
            n, m = b["src_lengths"][r], b["tgt_lengths"][r]
            if n == 0:  # filler row
                assert m == 0 and not b["src"][r].any() and not b["tgt_out"][r].any()
                continue
            s, t = b["src"][r, :n], b["tgt_out"][r, :m - 1]
            assert not b["src"][r, n:].any() and b["tgt_out"][r, m - 1] == M.EOS
            assert b["tgt_in"][r, 0] == M.BOS and np.array_equal(b["tgt_in"][r, 1:m], t)
            assert max(n, m) <= width and (width == bounds[0] or max(n, m) > bounds[bounds.index(width) - 1])
            seen.append((tuple(s), tuple(t)))
    assert sorted(seen) == sorted((tuple(s), tuple(t)) for s, t in zip(src, tgt))


def test_batches_deterministic_per_seed_and_epoch():
    src, tgt = _pairs(np.random.default_rng(1), 100, 20)
    a = M.make_batches(src, tgt, tokens_per_batch=64, seed=3, epoch=0)
    b = M.make_batches(src, tgt, tokens_per_batch=64, seed=3, epoch=0)
    c = M.make_batches(src, tgt, tokens_per_batch=64, seed=3, epoch=1)
    assert all(np.array_equal(x["src"], y["src"]) for x, y in zip(a, b))
    assert not all(np.array_equal(x["src"], y["src"]) for x, y in zip(a, c) if x["src"].shape == y["src"].shape)


def test_padding_share_counts_padded_positions():
    src = [np.arange(4, 7, dtype=np.int32)]          # 3 tokens
    tgt = [np.arange(4, 9, dtype=np.int32)]          # 5 tokens -> 6 with BOS/EOS
    (b,) = M.make_batches(src, tgt, tokens_per_batch=8, boundaries=(8,), shuffle=False)
    assert b["src"].shape == (1, 8)
    share = M.padding_share([b])
    assert share["src"] == pytest.approx(5 / 8) and share["tgt"] == pytest.approx(2 / 8)
    assert share["all"] == pytest.approx(7 / 16)


def test_long_pairs_dropped_or_refused():
    src = [np.ones(40, np.int32) * 5, np.ones(3, np.int32) * 5]
    tgt = [np.ones(3, np.int32) * 5, np.ones(3, np.int32) * 5]
    assert sum(int((b["src_lengths"] > 0).sum()) for b in M.make_batches(src, tgt, boundaries=(8, 16))) == 1
    with pytest.raises(ValueError, match="largest boundary 16"):
        M.make_batches(src, tgt, boundaries=(8, 16), drop_longer=False)
    with pytest.raises(ValueError, match="boundaries must be increasing"):
        M.make_batches(src, tgt, boundaries=(16, 8))


def test_row_multiple_rounds_rows():
    src, tgt = _pairs(np.random.default_rng(2), 50, 20)
    for b in M.make_batches(src, tgt, tokens_per_batch=200, boundaries=(8, 16, 32), row_multiple=4):
        assert b["src"].shape[0] % 4 == 0 and b["src"].shape[0] <= max(4, 200 // b["src"].shape[1])
