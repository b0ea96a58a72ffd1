"""Char-LM data: the shipped file is checksummed, a user's own text is taken as given and its
vocabulary is stored with the run."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from jaxseq.data import charlm


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_user_file_is_taken_as_given(tmp_path):
    text = "hello world\nhow are you?\n" * 20
    data = charlm.load_charlm(_write(tmp_path / "my.txt", text))
    assert data.vocab.chars == "".join(sorted(set(text)))
    n = int(len(text) * charlm.TRAIN_FRACTION)
    assert data.vocab.decode(data.train) == text[:n] and data.vocab.decode(data.valid) == text[n:]
    assert data.source == str(tmp_path / "my.txt") and len(data.sha256) == 64


def test_empty_missing_and_binary_files(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        charlm.load_charlm(_write(tmp_path / "empty.txt", ""))
    with pytest.raises(FileNotFoundError, match="no such text file"):
        charlm.load_charlm(tmp_path / "missing.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(ValueError, match="not UTF-8"):
        charlm.load_charlm(tmp_path / "bin.txt")


def test_shipped_file_keeps_its_checksum(tmp_path, monkeypatch):
    if not charlm.DEFAULT_PATH.is_file():
        pytest.skip("data/tinyshakespeare/input.txt is not in this checkout")
    data = charlm.load_charlm(None)
    assert data.sha256 == charlm.TINYSHAKESPEARE_SHA256 and data.vocab.size == 65
    # A copy elsewhere is a user's file: read as given, no checksum asked for.
    copy = shutil.copy(charlm.DEFAULT_PATH, tmp_path / "input.txt")
    assert charlm.load_charlm(copy).vocab == data.vocab
    # The shipped file corrupted: still refused, by default and when named explicitly.
    corrupt = _write(tmp_path / "shipped.txt", "First Citizen:\nnot quite\n")
    monkeypatch.setattr(charlm, "DEFAULT_PATH", corrupt)
    for path in (None, corrupt, str(corrupt)):
        with pytest.raises(ValueError, match="does not match the expected Tiny Shakespeare checksum"):
            charlm.load_charlm(path)


def test_run_vocab_is_stored_then_checked(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    first = charlm.load_charlm(_write(tmp_path / "a.txt", "abcabc\n" * 10))
    assert charlm.check_run_vocab(run, first) is None
    stored = json.loads((run / charlm.VOCAB_FILE).read_text())
    assert stored["chars"] == "\nabc" and stored["source"] == first.source
    assert charlm.load_vocab(run) == first.vocab
    # The same file again: fine, nothing to say.
    assert charlm.check_run_vocab(run, first) is None
    # Another text, same characters: allowed, with a note.
    same = charlm.load_charlm(_write(tmp_path / "b.txt", "cbacba\n" * 10))
    note = charlm.check_run_vocab(run, same)
    assert note and "same vocabulary" in note
    # Another vocabulary: one-line error naming what differs.
    other = charlm.load_charlm(_write(tmp_path / "c.txt", "abxy\n" * 10))
    with pytest.raises(ValueError) as e:
        charlm.check_run_vocab(run, other)
    msg = str(e.value)
    assert "\n" not in msg and "vocabulary" in msg and "2 ('xy') new" in msg and "1 ('c') missing" in msg
    # The stored file is untouched by a refused check; write=False never writes.
    assert charlm.load_vocab(run) == first.vocab
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    charlm.check_run_vocab(fresh, first, write=False)
    assert not (fresh / charlm.VOCAB_FILE).exists()


def test_load_vocab_rejects_bad_files(tmp_path):
    bad = _write(tmp_path / "vocab.json", json.dumps({"chars": "aab"}))
    with pytest.raises(ValueError, match="distinct"):
        charlm.load_vocab(bad)
    with pytest.raises(ValueError, match="not a vocabulary file"):
        charlm.load_vocab(_write(tmp_path / "v2.json", "{"))
    assert np.array_equal(charlm.CharVocab("ab").encode("ba"), [1, 0])
