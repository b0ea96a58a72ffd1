"""Translation study (jaxseq translate): the smoke study end to end, the run/eval commands, bad input."""
import json

import numpy as np
import pytest

from jaxseq.cli import main
from jaxseq.data import multi30k as M
from jaxseq.studies import translation as T
from jaxseq.studies.translation import cli as translation_cli
from jaxseq.studies.translation import decode as translation_decode
from jaxseq.studies.translation import report as translation_report


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("translation")
    path = T.run_study("smoke", out, progress=False)
    return out, path


def test_smoke_study_writes_records_report_and_plots(study):
    out, report = study
    recs = [json.loads(line) for line in (out / T.RESULTS).read_text().splitlines()]
    finals = {r["model"]: r for r in recs if r["kind"] == "final"}
    assert set(finals) == {"lstm", "transformer"}
    for r in finals.values():
        assert r["steps"] == 4 and not r["cut_by_budget"] and r["machine_id"]
        for beam in ("beam1", "beam5"):
            assert 0.0 <= r[beam]["bleu"] <= 100.0 and r[beam]["sentences_per_s"] > 0
            assert r[beam]["bleu_signature"].startswith("nrefs:1|")
        hm = r["attention"][0]
        w = np.asarray(hm["weights"])
        assert w.shape == (len(hm["tgt"]), len(hm["src"])) and np.allclose(w.sum(-1), 1.0, atol=1e-3)
    curve = [r for r in recs if r["kind"] == "curve"]
    assert {r["model"] for r in curve} == {"lstm", "transformer"}
    text = report.read_text()
    assert "| lstm |" in text and "| transformer |" in text and "sacrebleu signature" in text
    assert "padding" in text
    for png in ("bleu_vs_time.png", "attention_lstm.png", "attention_transformer.png"):
        assert (out / png).stat().st_size > 1000
    # a rerun skips finished models and rewrites the same report from the records
    n = len(recs)
    T.run_study("smoke", out, progress=False)
    assert len((out / T.RESULTS).read_text().splitlines()) == n


def test_run_and_eval_commands(study, tmp_path, capsys):
    out, _ = study
    run = out / "runs" / "lstm"
    src = tmp_path / "in.en"
    src.write_text("A man is running.\nTwo dogs play in the snow.\n")
    assert main(["translate", "run", "--workdir", str(run), "--input", str(src), "--beam", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    ref = tmp_path / "ref.de"
    ref.write_text("Ein Mann rennt.\nZwei Hunde spielen im Schnee.\n")
    # the same beam as `run` above: the decoding compiled for it is reused
    assert main(["translate", "eval", "--workdir", str(run), "--src", str(src), "--ref", str(ref), "--beam", "2"]) == 0
    printed = capsys.readouterr().out
    assert "BLEU" in printed and "BLEU signature: nrefs:1" in printed and "chrF signature" in printed


def test_bad_input_is_one_line_exit_2(study, tmp_path, capsys):
    out, _ = study
    run = out / "runs" / "transformer"
    good = tmp_path / "a.en"
    good.write_text("one\ntwo\n")
    short = tmp_path / "b.de"
    short.write_text("eins\n")
    empty = tmp_path / "e.en"
    empty.write_text("")
    cases = [
        (["translate", "run", "--workdir", str(run), "--input", str(tmp_path / "missing.en")], "no such file"),
        (["translate", "run", "--workdir", str(run), "--input", str(empty)], "is empty"),
        (["translate", "eval", "--workdir", str(run), "--src", str(good), "--ref", str(short)],
         "--src has 2 lines but --ref has 1"),
        (["translate", "run", "--workdir", str(tmp_path), "--input", str(good)], "no trained translation run"),
    ]
    for argv, msg in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err


def _recording_translate(monkeypatch):
    """Patch the process's jitted `translate` to record the source lengths of every batch sent to the model."""
    real, sent = translation_decode._jitted_translate(), []

    def record(model, src, lens, **kw):
        sent.append(np.asarray(lens).copy())
        return real(model, src, lens, **kw)

    monkeypatch.setattr(translation_decode, "_jitted_translate", lambda: record)
    return sent


def test_run_answers_empty_lines_with_empty_lines(study, tmp_path, capsys, monkeypatch):
    out, _ = study
    run = out / "runs" / "lstm"
    both = tmp_path / "both.en"
    both.write_text("A man is running.\nTwo dogs play in the snow.\n")
    assert main(["translate", "run", "--workdir", str(run), "--input", str(both), "--beam", "2"]) == 0
    want = capsys.readouterr().out.splitlines()
    gaps = tmp_path / "gaps.en"
    gaps.write_text("\nA man is running.\n\n   \t\nTwo dogs play in the snow.\n\n")
    sent = _recording_translate(monkeypatch)
    assert main(["translate", "run", "--workdir", str(run), "--input", str(gaps), "--beam", "2"]) == 0
    captured = capsys.readouterr()
    # output line i translates input line i; the blank lines never reach the model
    assert captured.out.split("\n") == ["", want[0], "", "", want[1], "", ""]
    tok = M.Tokenizer.load(run / T.TOKENIZER)
    assert sorted(int(n) for lens in sent for n in lens if n) == sorted(
        len(y) for y in tok.encode(["A man is running.", "Two dogs play in the snow."]))
    assert captured.err == ""
    # an input of blank lines only is answered without the model
    sent.clear()
    blank = tmp_path / "blank.en"
    blank.write_text("\n \n")
    assert main(["translate", "run", "--workdir", str(run), "--input", str(blank)]) == 0
    assert capsys.readouterr().out == "\n\n" and sent == []


class _WordTokenizer:
    """A stand-in tokenizer: word i of the vocabulary is id i + 4."""

    words = ["a", "man", "runs", "two", "dogs", "play", "invented"]

    def encode(self, sentences):
        return [np.asarray([self.words.index(w) + 4 for w in s.split()], np.int32) for s in sentences]

    def decode(self, ids):
        return " ".join(self.words[i - 4] for i in ids)


def test_translator_never_decodes_empty_sentences(monkeypatch):
    # A stand-in search that, like an untrained model, writes a sentence for every row it gets, even an empty one
    # (it copies the source's first word, "invented" for an empty source): the blank lines must not get one.
    sent = []

    def search(model, src, lens, *, max_len, beam_size):
        sent.append(int((np.asarray(lens) > 0).sum()))
        ys = np.zeros((src.shape[0], max_len), np.int32)
        ys[:, 0] = np.where(np.asarray(lens) > 0, src[:, 0], 4 + _WordTokenizer.words.index("invented"))
        ys[:, 1] = M.EOS
        return ys

    monkeypatch.setattr(translation_decode, "_jitted_translate", lambda: search)
    tr = T.Translator(None, _WordTokenizer(), rows=4, boundaries=(8, 16))
    lines = ["", "a man runs", "  ", "two dogs play", "\t", "dogs"]
    assert tr.translate(lines, beam=1) == ["", "a", "", "two", "", "dogs"]
    assert sum(sent) == 3  # the three sentences with words, nothing else
    ids, shapes = tr.translate_ids(tr.encode(["", " "]), beam=1)
    assert [len(y) for y in ids] == [0, 0] and shapes == 0 and sum(sent) == 3


def test_run_warns_once_about_far_too_long_lines_and_translates_them(study, tmp_path, capsys):
    out, _ = study
    run = out / "runs" / "lstm"
    src = tmp_path / "long.en"
    src.write_text("A man is running.\n" + "dogs play in the snow " * 60 + "\nTwo dogs.\n" + "a " * 400 + "\n")
    assert main(["translate", "run", "--workdir", str(run), "--input", str(src), "--beam", "2"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 4
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    # the smoke preset trains on one bucket of 128 tokens: both long lines are longer, and are cut
    lengths = [len(y) for y in M.Tokenizer.load(run / T.TOKENIZER).encode(src.read_text().splitlines())]
    assert lengths[1] > 128 and lengths[3] > 128 and max(lengths[0], lengths[2]) < 20
    assert "warning: --input lines " in err and f"2 ({lengths[1]} tokens), 4 ({lengths[3]} tokens)" in err, err
    assert "(128 tokens" in err and "only the first 128 tokens" in err


def test_long_lines_warning_names_every_line_that_is_cut():
    ids = [np.zeros(n, np.int32) for n in (10, 100, 101, 0, 400)]
    assert T.long_lines_warning(ids[:2], 100) is None  # 100 tokens fit: nothing is cut
    msg = T.long_lines_warning(ids, 100)
    assert msg.startswith("warning: --input lines 3 (101 tokens), 5 (400 tokens) are longer than the longest")
    assert "(100 tokens" in msg and len(msg.splitlines()) == 1
    assert T.long_lines_warning(ids[4:], 100, name="--src").startswith("warning: --src line 1 (400 tokens) is longer")


def test_run_refuses_binary_or_missing_input_in_one_line(tmp_path, capsys):
    # the input is read before the workdir is looked at: no trained run needed
    png = tmp_path / "picture.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8\n")
    nul = tmp_path / "nul.en"
    nul.write_bytes(b"A man.\nTwo\x00dogs.\n")  # valid UTF-8, but not text
    for path, detail in ((png, "byte 0x89 at offset 0"), (nul, "a NUL byte on line 2")):
        with pytest.raises(ValueError, match="not UTF-8 text"):
            translation_cli._lines(str(path), "--input")
        capsys.readouterr()
        assert main(["translate", "run", "--workdir", str(tmp_path), "--input", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert err.startswith("jaxseq translate: error: --input: ") and str(path) in err, err
        assert "is not UTF-8 text" in err and detail in err, err
    for path, msg in ((tmp_path / "missing.en", "--input: no such file: "), (tmp_path, "--input: ")):
        assert main(["translate", "run", "--workdir", str(tmp_path), "--input", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg + str(path) in err, err
    assert "is a directory" in err


def test_resume_with_other_data_settings_is_refused(study):
    out, _ = study
    before = (out / T.SETTINGS).read_text()
    with pytest.raises(ValueError, match="other data settings .*vocab_size: run 200, now 300"):
        T.prepare_run(out, vocab_size=300, train_pairs=400, boundaries=(128,))
    assert (out / T.SETTINGS).read_text() == before  # nothing overwritten


def test_training_data_is_a_pure_function_of_seed_and_step():
    tok = M.train_tokenizer(M.load_split("val")[0] + M.load_split("val")[1], vocab_size=200)
    pairs = M.load_split("val")
    data = T.TranslationData(tok, pairs, pairs, boundaries=(16, 32, 64, 128), row_multiple=4)
    n = data.batches_per_epoch(512)
    a = data.train_batch(seed=1, step=n + 3, batch_size=16, seq_len=32)
    data.train_batch(seed=1, step=0, batch_size=16, seq_len=32)  # another epoch in between
    b = data.train_batch(seed=1, step=n + 3, batch_size=16, seq_len=32)
    assert all(np.array_equal(a[k], b[k]) for k in a) and a["src"].shape[0] % 4 == 0
    assert np.array_equal(a["inputs"], a["src"])
    assert n == len(data.epoch_batches(seed=5, epoch=2, tokens=512))  # the count holds for every epoch


def test_steps_after_the_first_epoch_build_each_epoch_once(monkeypatch):
    # A regression: the batch count used to evict the cached epoch, so from the second epoch on every step
    # rebuilt two epochs of batches on the host (~0.4 s a step on Multi30k, beside a ~1 s training step).
    tok = M.train_tokenizer(M.load_split("val")[0] + M.load_split("val")[1], vocab_size=200)
    pairs = M.load_split("val")
    data = T.TranslationData(tok, pairs, pairs, boundaries=(16, 32, 64, 128))
    n = data.batches_per_epoch(512)
    calls = []
    build = data._batches
    monkeypatch.setattr(data, "_batches", lambda *a, **k: calls.append(k.get("epoch")) or build(*a, **k))
    for step in range(n, n + 5):  # epoch 1
        data.train_batch(seed=0, step=step, batch_size=16, seq_len=32)
    data.train_batch(seed=0, step=2 * n, batch_size=16, seq_len=32)  # epoch 2
    assert calls == [1, 2]


class _GivenLogits:
    """A stand-in model that returns fixed logits, so the loss is tested alone."""

    def __init__(self, logits):
        self.logits = logits

    def __call__(self, src, lens, tgt_in):
        return self.logits


def test_label_smoothed_loss_matches_numpy():
    import jax
    import jax.numpy as jnp

    logits = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)

    batch = {"src": np.zeros((2, 3), np.int32), "src_lengths": np.array([3, 3]), "tgt_in": np.zeros((2, 3), np.int32),
             "tgt_out": np.array([[1, 2, 3], [4, 0, 0]]), "tgt_lengths": np.array([3, 1])}
    model = _GivenLogits(jnp.asarray(logits))
    total, count = jax.jit(lambda b: T.label_smoothed_loss(0.1)(model, b, train=True))(batch)  # one compile
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = 0.0
    for b, n in enumerate(batch["tgt_lengths"]):
        for t in range(n):
            want += 0.9 * -logp[b, t, batch["tgt_out"][b, t]] - 0.1 * logp[b, t].mean()
    assert float(count) == 4.0 and float(total) == pytest.approx(want, rel=1e-5)


def test_label_smoothed_loss_gradient_matches_numpy():
    """d loss / d logits = (softmax - smoothed target) on real tokens, zero on padding (float64 reference)."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(1)
    logits = rng.standard_normal((2, 4, 7)).astype(np.float32) * 3
    batch = {"src": np.zeros((2, 4), np.int32), "src_lengths": np.array([4, 4]), "tgt_in": np.zeros((2, 4), np.int32),
             "tgt_out": rng.integers(0, 7, (2, 4)), "tgt_lengths": np.array([4, 2])}

    loss = T.label_smoothed_loss(0.2)
    grad = jax.jit(jax.grad(lambda z: loss(_GivenLogits(z), batch, train=True)[0]))(jnp.asarray(logits))
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    target = 0.8 * np.eye(7)[batch["tgt_out"]] + 0.2 / 7
    mask = (np.arange(4)[None] < batch["tgt_lengths"][:, None])[..., None]
    np.testing.assert_allclose(np.asarray(grad), (p - target) * mask, atol=1e-6)


def _final(tps, bleu5, decode_s):
    return {"parameters": 1000, "train_target_tokens_per_s": tps, "test_sentences": 1000,
            "beam1": {"bleu": bleu5 - 1, "decode_s": decode_s / 2}, "beam5": {"bleu": bleu5, "decode_s": decode_s}}


def _curve(points):
    return [{"step": s, "train_time_s": t, "val_bleu": b} for s, t, b in points]


def test_findings_say_where_the_lead_comes_from_and_check_the_decode_goal():
    # The Transformer trains fewer tokens/s but reaches 30 in fewer steps: the finding must say so.
    finals = {"lstm": _final(2000.0, 33.6, 22.4), "transformer": _final(1500.0, 34.8, 61.0)}
    curves = {"lstm": _curve([(800, 700, 12.0), (1600, 1378, 31.0)]),
              "transformer": _curve([(600, 711, 27.7), (800, 938, 30.5), (1200, 1380, 34.2)])}
    text = "\n".join(translation_report._findings(finals, curves))
    assert "First to 30 validation BLEU (greedy) in training wall-clock time: transformer" in text
    assert "transformer gets to 30 first although it trains fewer target tokens per second (1500 vs 2000)" in text
    assert "800 steps against 1600 for the lstm" in text and "learning more per step" in text
    assert "lstm never" in text  # to 34
    assert "lstm translates the 1000 test sentences with beam 5 in 22.4 s (under the 60 s goal" in text
    assert "transformer translates the 1000 test sentences with beam 5 in 61.0 s (NOT under" in text
    # The faster trainer that is also first gets no "learning more per step" claim.
    finals["transformer"]["train_target_tokens_per_s"] = 2500.0
    text = "\n".join(translation_report._findings(finals, curves))
    assert "first and also trains more target tokens per second (2500 vs 2000)" in text
    assert "learning more per step" not in text


def test_findings_check_the_study_time_goal():
    finals = {"lstm": {**_final(2000.0, 33.6, 22.4), "wall_s": 1900.0, "preset": "default"},
              "transformer": {**_final(1500.0, 34.8, 50.0), "wall_s": 1500.0, "preset": "default"}}
    text = "\n".join(translation_report._findings(finals, {"lstm": [], "transformer": []}))
    assert "lstm 31.7 min, transformer 25.0 min; 56.7 min in all, within the 60-minute goal." in text
    finals["transformer"].update(wall_s=1800.0, resumed=True)
    text = "\n".join(translation_report._findings(finals, {"lstm": [], "transformer": []}))
    assert ("61.7 min in all, NOT within the 60-minute goal (resumed, so only the last part counted: transformer)"
            in text)
    for f in finals.values():  # the 60-minute goal is the default preset's alone
        f["preset"] = "gpu"
    text = "\n".join(translation_report._findings(finals, {"lstm": [], "transformer": []}))
    assert "lstm 31.7 min, transformer 30.0 min; 61.7 min in all (resumed" in text and "goal" not in text.split(
        "Study wall-clock")[1]
    del finals["lstm"]["wall_s"], finals["transformer"]["wall_s"]  # records written before wall_s existed
    assert "Study wall-clock" not in "\n".join(translation_report._findings(finals, {"lstm": [], "transformer": []}))


def test_findings_give_the_decode_verdict_for_the_cpu_test_set_only_and_the_host_anchor():
    finals = {"lstm": {**_final(2000.0, 33.6, 22.4), "wall_s": 1900.0, "preset": "default",
                       "host_matmul_gflops": 351.6, "platform": "cpu"},
              "transformer": {**_final(1500.0, 34.8, 70.0), "wall_s": 1500.0, "preset": "default",
                              "host_matmul_gflops": 340.2, "platform": "gpu"}}
    text = "\n".join(translation_report._findings(finals, {"lstm": [], "transformer": []}))
    assert "lstm translates the 1000 test sentences with beam 5 in 22.4 s (under the 60 s goal; greedy 11.2 s)" in text
    assert "transformer translates the 1000 test sentences with beam 5 in 70.0 s (greedy 35.0 s)." in text
    assert "(float32 2048×2048 matmul): lstm 352 GFLOP/s, transformer 340 GFLOP/s" in text
    finals["lstm"]["test_sentences"] = 10  # a partial test set is not the goal's
    text = "\n".join(translation_report._findings(finals, {"lstm": [], "transformer": []}))
    assert "goal" not in text.split("Study wall")[0]
