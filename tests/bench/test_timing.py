"""time_fn: ordered stats, compile time kept out of the timed calls; memory and torch timing."""
import time

import jax
import jax.numpy as jnp
import numpy as np

import pytest

from jaxseq.bench import timing
from jaxseq.bench.timing import Timing, machine_load, matmul_gflops, memory_of, peak_rss, time_fn, time_torch


def test_time_fn_stats_and_compile_excluded():
    calls = []

    def f(x):
        calls.append(1)  # Python body runs only while tracing
        return jnp.tanh(x @ x.T).sum()

    x = jnp.ones((64, 64))
    t = time_fn(f, x, warmup=2, repeats=5)
    assert isinstance(t, Timing)
    assert len(t.times) == 5
    assert t.min <= t.median <= t.max
    assert t.compile_s > 0
    assert len(calls) == 1  # traced once, at compile time: the timed calls never compile
    assert t.load_before is None or len(t.load_before) == 3
    d = t.to_dict()
    assert "compiled" not in d and d["median"] == t.median
    mem = memory_of(t.compiled)
    assert mem["argument_bytes"] == 64 * 64 * 4
    assert set(mem) >= {"temp_bytes", "output_bytes", "generated_code_bytes", "peak_bytes"}


def test_time_fn_accepts_jitted():
    f = jax.jit(lambda x: x * 2)
    t = time_fn(f, jnp.ones(3), warmup=0, repeats=2)
    assert len(t.times) == 2


def test_memory_of_handles_none():
    class NoMem:
        def memory_analysis(self):
            return None

    assert all(v is None for v in memory_of(NoMem()).values())


def test_time_torch():
    import torch

    x = torch.ones(32, 32)
    t = time_torch(lambda a: (a @ a).sum(), x, warmup=1, repeats=3, no_grad=True)
    assert t.compile_s is None and t.min <= t.median <= t.max


def test_sleep_is_timed():
    t = time_torch(lambda: time.sleep(0.01), warmup=0, repeats=2)
    assert t.min >= 0.009


def _largest_of_three(measure):
    # peak_rss reads the process's marks, and in the full suite another thread freeing an earlier test's buffers
    # during the call once hid a 160 MB allocation (measured 0): the largest of three tries is the test's number.
    peaks = [measure() for _ in range(3)]
    return None if None in peaks else max(peaks)


def test_peak_rss_sees_allocation():
    peak = _largest_of_three(lambda: peak_rss(lambda: np.ones(20_000_000).sum()))  # 160 MB
    assert peak is None or peak > 100e6
    assert machine_load() is None or len(machine_load()) == 3


def test_peak_rss_is_not_hidden_by_garbage_freed_inside_fn():
    import gc

    class Cycle:
        pass

    def fn():
        gc.collect()
        return np.ones(20_000_000).sum()  # 160 MB

    def measure():
        gc.disable()  # keep the garbage pending until `fn` collects it, as a collection mid-benchmark would
        try:
            c = Cycle()
            c.self, c.data = c, np.ones(40_000_000)  # 320 MB in a reference cycle
            del c
            return peak_rss(fn)
        finally:
            gc.enable()

    # Without peak_rss's own collection every try measures 0: the 320 MB freed inside fn hides its 160 MB.
    peak = _largest_of_three(measure)
    assert peak is None or peak > 100e6


def test_matmul_gflops_is_2n3_over_the_median_time(monkeypatch):
    rate = matmul_gflops(128, repeats=2)
    assert 0.01 < rate < 1e6  # a real measurement: GFLOP/s of some device that exists
    seen = {}

    def fake_time_fn(fn, a, *, warmup, repeats):
        seen.update(shape=a.shape, repeats=repeats, out=np.asarray(fn(a)), a=np.asarray(a))
        return Timing(median=0.5, min=0.4, max=0.6, compile_s=0.0, times=[0.5])

    monkeypatch.setattr(timing, "time_fn", fake_time_fn)
    assert matmul_gflops(64, repeats=3) == pytest.approx(2 * 64 ** 3 / 0.5 / 1e9)
    assert seen["shape"] == (64, 64) and seen["repeats"] == 3
    np.testing.assert_allclose(seen["out"], seen["a"] @ seen["a"], rtol=1e-4, atol=1e-3)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="matmul_gflops: n must be a positive int"):
            matmul_gflops(bad)


def test_time_paired_rotates_the_order_and_times_every_round(monkeypatch):
    calls = []
    clock = iter(range(1000))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: float(next(clock)))
    steps = [lambda i=i: calls.append(i) for i in range(3)]
    times = timing.time_paired(steps, rounds=4, warmup=1, settle=0)
    assert calls[:3] == [0, 1, 2]  # warm-up, in order
    # round r starts at step r % 3
    assert calls[3:] == [0, 1, 2, 1, 2, 0, 2, 0, 1, 0, 1, 2]
    assert len(times) == 3 and all(len(t) == 4 for t in times)
    assert all(x == 1.0 for t in times for x in t)  # one tick between each call's two clock reads
    # settle: an untimed call of the same step right before each timed one
    calls.clear()
    timing.time_paired(steps, rounds=2, warmup=0, settle=1)
    assert calls == [0, 0, 1, 1, 2, 2, 1, 1, 2, 2, 0, 0]


def test_paired_ratios_are_per_round():
    r = timing.paired_ratios([1.0, 2.0, 3.0], [0.5, 4.0, 3.0])
    assert r["ratios"] == [2.0, 0.5, 1.0] and r["median"] == 1.0 and r["min"] == 0.5 and r["max"] == 2.0
    assert r["rounds"] == 3
    with pytest.raises(ValueError, match="equal, non-empty"):
        timing.paired_ratios([1.0], [1.0, 2.0])


@pytest.mark.parametrize("kwargs, match", [({"rounds": 0}, "rounds"), ({"rounds": 1.5}, "rounds"),
                                           ({"warmup": -1}, "warmup"), ({"rounds": True}, "rounds"),
                                           ({"settle": -1}, "settle")])
def test_time_paired_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        timing.time_paired([lambda: None], **kwargs)
    with pytest.raises(ValueError, match="at least one step"):
        timing.time_paired([])


def test_blocked_step_runs_jax_and_torch_workloads():
    import torch

    from jaxseq.bench.workloads import Workload, blocked_step

    seen = []
    w = Workload("j", "jax", lambda x: x * 2, (jnp.ones(3),), tokens=3, flops=None)
    blocked_step(w)()
    t = Workload("t", "torch", lambda x: seen.append(torch.is_grad_enabled()), (1,), tokens=1, flops=None,
                 no_grad=True)
    blocked_step(t)()
    assert seen == [False]


def test_blocked_step_reuses_the_executable_measure_workload_timed():
    from jaxseq.bench.workloads import Workload, blocked_step, measure_workload

    w = Workload("j", "jax", lambda x: x * 2, (jnp.arange(3.0),), tokens=3, flops=None)
    keep = {}
    measure_workload(w, warmup=0, repeats=1, keep=keep)
    assert hasattr(keep["compiled"], "as_text")  # the AOT executable the timings ran
    calls = []

    def executable(*args):
        calls.append(args)
        return keep["compiled"](*args)

    blocked_step(w, executable)()
    assert len(calls) == 1  # the given executable ran, not a fresh jit of w.fn
    t = Workload("t", "torch", lambda: None, (), tokens=1, flops=None)
    keep_t = {}
    measure_workload(t, warmup=0, repeats=1, keep=keep_t)
    assert "compiled" not in keep_t
