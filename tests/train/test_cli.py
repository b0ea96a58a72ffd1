"""`jaxseq train` / `jaxseq sample` end to end, in subprocesses: kill -9 and resume, several processes,
a non-finite loss, sampling, bad input."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from _train_helpers import REPO

TINY = ["--model", "lstm", "--d-model", "16", "--layers", "1", "--batch-size", "8", "--seq-len", "16",
        "--lr", "1e-2", "--warmup-steps", "2", "--eval-batches", "1", "--no-progress"]


def _env(devices: int = 1, cache: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONPATH"] = str(REPO)
    if cache is not None:
        # A persistent compilation cache shared by the runs of one test: the first run compiles, the
        # others load the same executables (compiling is most of a tiny run's time).
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "jaxseq.cli", *args]


def _run(*args: str, devices: int = 1, timeout: float = 240,
         cache: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), cwd=REPO, env=_env(devices, cache), capture_output=True, text=True,
                          timeout=timeout)


def _final_params(workdir: Path) -> list[np.ndarray]:
    import jax

    from jaxseq.train.loop import load_model
    from flax import nnx

    model, _, _, step = load_model(workdir)
    return step, [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def _committed(ckdir: Path) -> list[int]:
    return sorted(int(p.name) for p in ckdir.glob("*") if p.name.isdigit()) if ckdir.is_dir() else []


def test_sigkill_mid_run_then_resume_is_bitwise_identical(tmp_path):
    steps = "150"
    common = [*TINY, "--steps", steps, "--ckpt-every", "5", "--eval-every", "0", "--log-every", "50"]
    cache = tmp_path / "jax_cache"
    # The uninterrupted reference first: it fills the compilation cache the two other runs load from.
    straight = tmp_path / "straight"
    ref = _run("train", "--workdir", str(straight), *common, cache=cache)
    assert ref.returncode == 0, ref.stderr[-2000:]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd("train", "--workdir", str(killed), *common), cwd=REPO, env=_env(cache=cache),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while len(_committed(killed / "checkpoints")) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done_before = _committed(killed / "checkpoints")
    assert done_before and max(done_before) < int(steps), done_before
    resumed = _run("train", "--workdir", str(killed), cache=cache)  # the saved config: no flags needed
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from checkpoint" in resumed.stderr
    assert not list((killed / "checkpoints").glob("*orbax-checkpoint-tmp*"))
    step_a, a = _final_params(killed)
    step_b, b = _final_params(straight)
    assert step_a == step_b == int(steps)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(workdir: Path) -> dict[int, float]:
    recs = [json.loads(l) for l in (workdir / "logs" / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in recs if "train/loss" in r}


def test_multiprocess_matches_jit(tmp_path):
    from jaxseq.cli import main

    common = [*TINY, "--steps", "4", "--ckpt-every", "0", "--eval-every", "0", "--log-every", "1"]
    coord = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            _cmd("train", "--workdir", str(tmp_path / "mp"), *common, "--parallel", "multiprocess",
                 "--coordinator", coord, "--num-processes", "2", "--process-id", str(i)),
            cwd=REPO, env=_env(devices=2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    # The one-device reference in this process (no interpreter start-up), while the two start up.
    try:
        ref_rc = main(["train", "--workdir", str(tmp_path / "jit"), *common])
    except BaseException:
        for q in procs:
            q.kill()
        raise
    assert ref_rc == 0
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=240))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("multiprocess run timed out")
    err = "\n".join(o[1][-1500:] for o in outs)
    if any(p.returncode != 0 for p in procs) and ("gloo" in err.lower() and "not" in err.lower()):
        pytest.skip(f"this platform cannot run CPU collectives across processes: {err[-300:]}")
    assert all(p.returncode == 0 for p in procs), err
    want, got = _losses(tmp_path / "jit"), _losses(tmp_path / "mp")
    assert sorted(got) == [1, 2, 3, 4]
    # 2 processes x 2 devices, batch 8 split 4 ways: same losses up to reduction order.
    np.testing.assert_allclose([got[k] for k in sorted(got)], [want[k] for k in sorted(got)], rtol=2e-5)


def test_non_finite_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path, capsys):
    from jaxseq.cli import main

    # Test hook documented in TrainConfig.extra: the parameters after update 5 become NaN.
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"extra": {"inject_nan_at_step": 5}, "steps": 8, "ckpt_every": 2,
                               "eval_every": 0}))
    wd = tmp_path / "run"
    # Through the command's entry point, in this process (a subprocess costs seconds of start-up).
    assert main(["train", "--workdir", str(wd), "--config", str(cfg), *TINY]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "non-finite" in last and "step 5" in last and "checkpoint 4 is kept" in last, last
    assert _committed(wd / "checkpoints") == [2, 4]
    step, params = _final_params(wd)
    assert step == 4 and all(np.isfinite(p).all() for p in params)


def test_train_from_config_file_then_sample(tmp_path, capsys):
    from jaxseq.cli import main

    wd = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"task": "charlm", "model": "gru", "workdir": str(wd), "steps": 3,
                               "d-model": 16, "layers": 1, "batch_size": 8, "seq_len": 16,
                               "eval_every": 3, "eval_batches": 1, "ckpt_every": 3, "progress": False}))
    assert main(["train", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "step 3/3" in out and "bits/char" in out
    assert json.loads((wd / "config.json").read_text())["model"] == "gru"
    assert main(["sample", "--workdir", str(wd), "--prompt", "ROMEO:", "--length", "20",
                 "--temperature", "0.8"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:") and len(text.rstrip("\n")) >= 6 + 20 - 1


@pytest.mark.parametrize("args, needle", [
    (["train", "--workdir", "X", "--model", "rnn9"], "--model: expected one of"),
    (["train", "--workdir", "X", "--profile-steps", "5:2"], "--profile-steps"),
    (["sample", "--workdir", "/nonexistent/run"], "no config.json"),
])
def test_bad_input_is_one_line_exit_2(args, needle, capsys):
    from jaxseq.cli import main

    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


# ---- --data-path: a user's own text --------------------------------------------------------------

def _user_text(alphabet: str, n: int = 2000, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(list(alphabet), size=n))


def test_train_on_own_text_then_sample_and_refuse_other_vocabulary(tmp_path, capsys):
    from jaxseq.cli import main

    own = tmp_path / "my.txt"
    own.write_text(_user_text("abcd efg\n"), encoding="utf-8")  # 2000 chars: eval split 200 >= 8*16+1
    wd = tmp_path / "run"
    args = ["train", "--workdir", str(wd), "--data-path", str(own), *TINY, "--steps", "2",
            "--ckpt-every", "2", "--eval-every", "2", "--log-every", "1"]
    assert main(args) == 0, capsys.readouterr().err[-2000:]
    assert "step 2/2" in capsys.readouterr().out
    stored = json.loads((wd / "vocab.json").read_text())
    assert stored["chars"] == "\n abcdefg" and stored["source"] == str(own)

    # sample uses the run's vocabulary: its characters and nothing else.
    assert main(["sample", "--workdir", str(wd), "--prompt", "abc", "--length", "30"]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("abc") and set(text) <= set("\n abcdefg")
    assert main(["sample", "--workdir", str(wd), "--prompt", "ROMEO"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not in the run's vocabulary" in err

    # A resume on a text with another vocabulary: one line, exit 2, the run left as it was.
    other = tmp_path / "other.txt"
    other.write_text(_user_text("abcdxyz\n", seed=1), encoding="utf-8")
    config_before = (wd / "config.json").read_text()
    assert main(["train", "--workdir", str(wd), "--data-path", str(other), "--steps", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--data-path" in err and "vocabulary" in err, err
    assert "differs from the one stored with this run" in err
    assert (wd / "config.json").read_text() == config_before
    assert _committed(wd / "checkpoints") == [2]


@pytest.mark.parametrize("content, needle", [(None, "no such text file"), ("", "is empty"),
                                             ("abc\n" * 3, "too short for --seq-len"),
                                             ("abc\n" * 100, "shorter than one evaluation batch")])
def test_own_text_bad_input_is_one_line_exit_2(tmp_path, capsys, content, needle):
    from jaxseq.cli import main

    path = tmp_path / "my.txt"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["train", "--workdir", str(tmp_path / "run"), "--data-path", str(path), *TINY,
                 "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("jaxseq train: error: --data-path")
    assert needle in err, err
