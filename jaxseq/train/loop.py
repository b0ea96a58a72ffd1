"""The training loop: data -> compiled step -> metrics/eval/checkpoints, resumable from its workdir.

Step numbers are 1-based: "step k" is the k-th update, checkpoint k holds the state after k updates,
and the batch of step k is `data.train_batch(seed=seed, step=k - 1, ...)`, so a resumed run continues
the exact data stream. Layout of a workdir: `config.json`, `checkpoints/<k>/`, `logs/metrics.jsonl`,
and `logs/<run_name>/` (TensorBoard events, and the profiler trace of `--profile-steps` under
`logs/<run_name>/plugins/profile/`; run_name defaults to the workdir's name and is saved in config.json).

Programmatic interface (what `jaxseq train` and the studies call):

    train(config, *, model_fn=None, data=None, loss_fn=None) -> RunResult

* `data`: a `CharLMData` (default for task "charlm": Tiny Shakespeare) or any object with
    - `vocab_size: int`
    - `train_batch(*, seed: int, step: int, batch_size: int, seq_len: int) -> dict[str, np.ndarray]`
      (a pure function of (seed, step): that is what makes resumption exact)
    - `eval_batches(*, batch_size: int, seq_len: int, max_batches: int | None) -> Iterable[dict]`
  Batches are dicts of arrays with a leading batch axis and at least "inputs"; the default loss is the
  token cross-entropy of `module(batch["inputs"])` against "targets" (int32 [B, T]) weighted by the
  optional "weights" (float32 [B, T]). `config.task = "custom"` requires `data`.
* `loss_fn(module, batch, *, train: bool) -> (loss_sum, weight_sum)`: replaces the cross-entropy;
  float32 scalars; the gradient is d(sum over the global batch)/d(params) / (global weight sum), and the
  reported losses are loss_sum / weight_sum. eval/bits_per_char is logged only for the default loss.
* `model_fn(config, vocab_size, rngs) -> nnx.Module` (default: `jaxseq.models.lm.LanguageModel`).
* `RunResult`: `state` (host TrainState after the last step), `step`, `losses` {step: train loss},
  `evals` {step: eval loss}, `model` (the trained module, dropout off, ready to call), `model_def`.
  A finished run can also be reloaded later with `load_model(workdir, model_fn=...)`.
* Optional hooks: `should_stop(step) -> bool`, asked after each dispatched step (True: evaluate,
  checkpoint and return early, e.g. at a time budget; it must answer the same on every process), and
  `on_eval(step, eval_loss)`, called after each evaluation; `on_eval_model(step, eval_loss, model)` also
  gets the model at that step (dropout off), e.g. to decode a validation set.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxseq.data import charlm
from jaxseq.train import metrics as metrics_lib
from jaxseq.train.checkpoint import Checkpointer
from jaxseq.train.config import TrainConfig, parse_profile_steps
from jaxseq.train.optim import optimizer_from_config
from jaxseq.train.parallel import Parallel, init_distributed, make_parallel
from jaxseq.train.profiling import StepProfiler
from jaxseq.train.state import ModelDef, TrainState, create_train_state
from jaxseq.train.steps import LossFn, eval_step, train_step

ModelFn = Callable[[TrainConfig, int, nnx.Rngs], nnx.Module]  # (config, vocab_size, rngs) -> module


class NonFiniteLossError(RuntimeError):
    """Raised when a step produced a non-finite loss, gradient or parameters; nothing after it is saved."""


@dataclass
class RunResult:
    state: TrainState  # one logical copy (host form), after the last completed step
    step: int
    losses: dict[int, float] = field(default_factory=dict)  # step -> train loss (this process's run)
    evals: dict[int, float] = field(default_factory=dict)  # step -> eval loss
    trace_counts: dict[str, int] = field(default_factory=dict)
    resumed_from: int | None = None
    stopped_early: bool = False  # should_stop ended the run before config.steps
    model_def: ModelDef | None = None
    model: nnx.Module | None = None  # the trained module (eval mode: dropout off)


def default_model_fn(config: TrainConfig, vocab_size: int, rngs: nnx.Rngs) -> nnx.Module:
    from jaxseq.models.lm import LanguageModel  # models imports nn: keep `jaxseq train --help` cheap

    return LanguageModel(
        vocab_size,
        kind=config.model,
        d_model=config.d_model,
        num_layers=config.layers,
        num_heads=config.num_heads,
        dropout=config.dropout,
        dtype=compute_dtype(config),  # the layers compute in it; parameters stay float32
        rngs=rngs,
    )


def load_data(config: TrainConfig) -> charlm.CharLMData:
    """Tiny Shakespeare (the shipped file, checksum verified) or the user's `--data-path` text as given."""
    if config.task == "custom":
        raise ValueError("task 'custom': pass the data object to train(config, data=...)")
    user_file = config.data_path is not None and not charlm.is_shipped(config.data_path)
    try:
        data = charlm.load_charlm(config.data_path)
    except (FileNotFoundError, ValueError) as e:
        if user_file:
            raise type(e)(f"--data-path: {e}") from None
        raise
    # A short text fails here, before compiling, rather than at the first batch or evaluation.
    if len(data.train) < config.seq_len + 2:
        raise ValueError(
            f"--data-path: the training split of {data.source} ({len(data.train)} characters, the first"
            f" {charlm.TRAIN_FRACTION:.0%}) is too short for --seq-len {config.seq_len} (needs"
            f" {config.seq_len + 2}); use a longer text or a smaller --seq-len"
        )
    need = config.batch_size * config.seq_len + 1
    if config.eval_every and len(data.valid) < need:
        raise ValueError(
            f"--data-path: the validation split of {data.source} ({len(data.valid)} characters, the"
            f" last {1 - charlm.TRAIN_FRACTION:.0%}) is shorter than one evaluation batch of --batch-size"
            f" {config.batch_size} x --seq-len {config.seq_len} (needs {need}); use a longer text,"
            " smaller sizes or --eval-every 0"
        )
    return data


def compute_dtype(config: TrainConfig) -> Any:
    return None if config.dtype == "float32" else jnp.dtype(config.dtype)


def build(
    config: TrainConfig, vocab_size: int, model_fn: ModelFn | None = None
) -> tuple[nnx.Module, ModelDef, TrainState, Any]:
    """Model, its split, a fresh train state and the LR schedule: the same for every run of a config."""
    model = (model_fn or default_model_fn)(config, vocab_size, nnx.Rngs(config.seed))
    tx, schedule = optimizer_from_config(config)
    model_def, state = create_train_state(model, tx, config.seed)
    return model, model_def, state, (tx, schedule)


def make_steps(
    config: TrainConfig, model_def: ModelDef, tx: Any, schedule: Any, loss_fn: LossFn | None = None
) -> tuple[Callable, Callable]:
    """The pure steps with everything static bound (what `make_parallel` compiles)."""
    dtype = compute_dtype(config)
    train_fn = functools.partial(
        train_step, model=model_def, tx=tx, schedule=schedule, compute_dtype=dtype,
        remat=config.remat, grad_accum=config.grad_accum, loss_fn=loss_fn,
    )
    eval_fn = functools.partial(eval_step, model=model_def, compute_dtype=dtype, loss_fn=loss_fn)
    nan_at = config.extra.get("inject_nan_at_step") if config.extra else None
    if nan_at is not None:
        train_fn = _poisoned(train_fn, int(nan_at))
    return train_fn, eval_fn


def _poisoned(train_fn: Callable, at_step: int) -> Callable:
    """Test hook (config.extra["inject_nan_at_step"]): the parameters after update `at_step` become NaN."""
    import optax

    def step(state, batch, **kw):
        new, m = train_fn(state, batch, **kw)
        bad = new.step == at_step
        params = jax.tree.map(lambda p: jnp.where(bad, jnp.nan, p), new.params)
        return new._replace(params=params), {**m, "param_norm": optax.tree.norm(params)}

    return step


def evaluate(par: Parallel, state: TrainState, data: Any, config: TrainConfig) -> float:
    """Mean validation loss (nats/char) over the first `eval_batches` batches of the validation set."""
    loss_sum, count = 0.0, 0.0
    for batch in data.eval_batches(
        batch_size=config.batch_size, seq_len=config.seq_len, max_batches=config.eval_batches or None
    ):
        m = par.fetch(par.eval_step(par.params_of(state), par.place_batch(batch)))
        loss_sum += m["loss_sum"]
        count += m["token_count"]
    return loss_sum / count


def _check_shards(config: TrainConfig, par: Parallel) -> None:
    need = par.num_shards * config.grad_accum
    if config.batch_size % need:
        raise ValueError(
            f"--batch-size: {config.batch_size} is not divisible by {par.num_shards} devices x "
            f"--grad-accum {config.grad_accum}"
        )


def _peak_total(config: TrainConfig, par: Parallel) -> float | None:
    peak = config.peak_tflops or metrics_lib.peak_tflops_for(par.devices[0].device_kind, config.dtype)
    return None if peak is None else peak * par.num_shards


def _saved_run_name(workdir: Path) -> str | None:
    """The run name in the workdir's config.json (a run started earlier), if any."""
    import json

    try:
        return json.loads((workdir / "config.json").read_text()).get("run_name")
    except (OSError, ValueError, AttributeError):
        return None


def _log(msg: str) -> None:
    if jax.process_index() == 0:
        print(f"[jaxseq train] {msg}", file=sys.stderr, flush=True)


def train(
    config: TrainConfig,
    *,
    model_fn: ModelFn | None = None,
    data: Any = None,
    loss_fn: LossFn | None = None,
    should_stop: Callable[[int], bool] | None = None,
    on_eval: Callable[[int, float], None] | None = None,
    on_eval_model: Callable[[int, float, nnx.Module], None] | None = None,
) -> RunResult:
    """Train (or resume) the run in `config.workdir`; see the module docstring."""
    config.validate()
    if config.parallel == "multiprocess":
        init_distributed(config.coordinator, config.num_processes, config.process_id)
    lead = jax.process_index() == 0
    workdir = Path(config.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if config.run_name is None:
        # Saved with the config, so a resumed run (even from a renamed workdir) keeps its name.
        config = dataclasses.replace(config, run_name=_saved_run_name(workdir) or workdir.name)
    data = data if data is not None else load_data(config)
    # The run's vocabulary is stored with it (vocab.json); checked before config.json is rewritten,
    # so a refused resume leaves the run as it was.
    vocab_note = (charlm.check_run_vocab(workdir, data, write=lead)
                  if isinstance(getattr(data, "vocab", None), charlm.CharVocab) else None)
    if lead:
        config.save(workdir / "config.json")
    if vocab_note:
        _log(vocab_note)

    model, model_def, state, (tx, schedule) = build(config, data.vocab_size, model_fn)
    par = make_parallel(config.parallel, *make_steps(config, model_def, tx, schedule, loss_fn))
    _check_shards(config, par)

    ckpt = Checkpointer(workdir / "checkpoints", max_to_keep=config.keep_checkpoints)
    for p in ckpt.removed_tmp:
        _log(f"removed an interrupted save: {p.name}")
    result = RunResult(state=state, step=0)
    latest = ckpt.latest_step()
    if latest is not None:
        state, _ = ckpt.restore(latest, state, par.restore_sharding())
        result.resumed_from = latest
        _log(f"resuming from checkpoint {latest} in {ckpt.directory}")
    start = int(np.asarray(jax.device_get(state.step)))
    state = par.place_state(state)

    tokens_per_step = config.batch_size * config.seq_len
    fpt = getattr(model, "flops_per_token", None)
    flops_per_step = 3.0 * fpt(config.seq_len) * tokens_per_step if callable(fpt) and loss_fn is None else None
    peak_total = _peak_total(config, par)
    del model  # the split (model_def, params) is what trains

    # Scalars and the profile in logs/<run_name>/: TensorBoard lists both under the run's name.
    writer = metrics_lib.MetricsWriter(workdir / "logs", run_name=config.run_name, enabled=lead)
    profiler = StepProfiler(writer.events_dir,
                            parse_profile_steps(config.profile_steps) if config.profile_steps else None)
    bar = None
    if config.progress and lead:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=start, desc=f"{config.model}/{config.parallel}", unit="step",
                   dynamic_ncols=True, file=sys.stderr)
    meta = run_meta(config, data)
    saved = latest

    # Accumulators for the interval since the last log line.
    acc = {"loss_sum": 0.0, "token_count": 0.0, "time": 0.0, "timed_steps": 0}
    clock = {"t": None}  # completion time of the previous step; None after non-step work

    def finish(k: int, dev_metrics: dict[str, jax.Array]) -> None:
        """Fetch step k's metrics (blocks), check them, accumulate and maybe log."""
        m = par.fetch(dev_metrics)
        now = time.perf_counter()
        if clock["t"] is not None:
            acc["time"] += now - clock["t"]
            acc["timed_steps"] += 1
        clock["t"] = now
        loss = m["loss_sum"] / m["token_count"]
        if not all(math.isfinite(v) for v in (loss, m["grad_norm"], m["param_norm"])):
            last = f"checkpoint {saved} is kept" if saved is not None else "no checkpoint was written"
            raise NonFiniteLossError(
                f"non-finite training loss at step {k} (loss={loss}, grad_norm={m['grad_norm']}, "
                f"param_norm={m['param_norm']}); stopped, nothing after step {k - 1} saved; {last} "
                f"in {ckpt.directory}"
            )
        result.losses[k] = loss
        acc["loss_sum"] += m["loss_sum"]
        acc["token_count"] += m["token_count"]
        if bar is not None:
            bar.update(1)
        if (config.log_every and k % config.log_every == 0) or k == config.steps:
            scalars = {
                "train/loss": acc["loss_sum"] / acc["token_count"],
                "train/learning_rate": m["learning_rate"],
                "train/grad_norm": m["grad_norm"],
            }
            if acc["timed_steps"]:
                scalars.update(metrics_lib.perf_scalars(
                    step_time=acc["time"] / acc["timed_steps"], tokens_per_step=tokens_per_step,
                    flops_per_step=flops_per_step, peak_tflops_total=peak_total,
                ))
            writer.write(k, scalars)
            if bar is not None:
                tps = scalars.get("perf/tokens_per_sec")
                bar.set_postfix(loss=f"{scalars['train/loss']:.4f}", **({"tok/s": f"{tps:,.0f}"} if tps else {}))
            acc.update(loss_sum=0.0, token_count=0.0, time=0.0, timed_steps=0)

    pending: tuple[int, dict] | None = None
    try:
        for k in range(start + 1, config.steps + 1):
            if profiler.starts_at(k):
                if pending is not None:
                    finish(*pending)
                    pending = None
                profiler.before_step(k, state)
                clock["t"] = time.perf_counter()  # the device is idle: step k's time starts now
            traced = profiler.active
            # While tracing, the step annotation spans the whole step: the batch, the dispatch, the
            # device work (waited for) and the metrics fetch, so XProf's step time is the logged one.
            with profiler.annotate(k):
                batch = par.place_batch(data.train_batch(
                    seed=config.seed, step=k - 1, batch_size=config.batch_size, seq_len=config.seq_len))
                state, dev_metrics = par.train_step(state, batch)
                if traced:
                    profiler.wait((state, dev_metrics))
                    finish(k, dev_metrics)
            if not traced:
                # Fetch the previous step's metrics only now, so one step is always queued behind the
                # host (and at most two are in flight: CPU collectives time out when many are queued).
                if pending is not None:
                    finish(*pending)
                pending = (k, dev_metrics)
            if profiler.is_last(k):
                profiler.stop(state)
                clock["t"] = None

            stop = should_stop is not None and k < config.steps and bool(should_stop(k))
            last = k == config.steps or stop
            do_eval = config.eval_every and (k % config.eval_every == 0 or last)
            do_ckpt = config.ckpt_every and (k % config.ckpt_every == 0 or last)
            if (do_eval or do_ckpt or last) and pending is not None:
                finish(*pending)  # a state is evaluated/saved only after its step checked out finite
                pending = None
            if do_eval:
                with profiler.annotate_eval():  # inside a traced window: labelled, not a train step
                    eval_loss = evaluate(par, state, data, config)
                result.evals[k] = eval_loss
                ev = {"eval/loss": eval_loss}
                if loss_fn is None:
                    ev["eval/bits_per_char"] = metrics_lib.bits_per_char(eval_loss)
                writer.write(k, ev)
                if on_eval is not None:
                    on_eval(k, eval_loss)
                if on_eval_model is not None:
                    params = jax.tree.map(jnp.asarray, to_host(par.host_state(state).params))
                    on_eval_model(k, eval_loss, model_def.merge(params, train=False))
                clock["t"] = None
            if do_ckpt:
                ckpt.save(k, par.host_state(state), {**meta, "step": k})
                saved = k
                clock["t"] = None
            if stop:
                result.stopped_early = True
                _log(f"stopped at step {k} of {config.steps} (should_stop)")
                break
        if pending is not None:
            finish(*pending)
            pending = None
    finally:
        profiler.stop()
        ckpt.close()  # waits for an async save in flight: a save that started is completed
        writer.close()
        if bar is not None:
            bar.close()

    result.state = to_host(par.host_state(state))
    result.step = int(result.state.step)
    result.trace_counts = dict(par.trace_counts)
    result.model_def = model_def
    result.model = model_def.merge(jax.tree.map(jnp.asarray, result.state.params), train=False)
    return result


def to_host(tree: Any) -> Any:
    """numpy copy of a (replicated) state; works for arrays that span several processes."""

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(x)

    return jax.tree.map(one, tree)


def run_meta(config: TrainConfig, data: Any) -> dict[str, Any]:
    """What `jaxseq sample` needs besides the arrays: the config and the character vocabulary."""
    vocab = getattr(data, "vocab", None)
    return {"config": dataclasses.asdict(config), "vocab_size": int(data.vocab_size),
            "vocab": getattr(vocab, "chars", None)}


def load_model(
    workdir: str | Path, *, step: int | None = None, model_fn: ModelFn | None = None
) -> tuple[nnx.Module, TrainConfig, str | None, int]:
    """The model of a run at checkpoint `step` (default: latest): (model, config, vocab chars, step).

    Pass the `model_fn` the run was trained with (default: LanguageModel); vocab chars is None for data
    without a character vocabulary."""
    from jaxseq.train.config import load_json

    workdir = Path(workdir)
    if not (workdir / "config.json").is_file():
        raise FileNotFoundError(f"{workdir}: no config.json here (not a `jaxseq train` workdir)")
    config = TrainConfig(**{**load_json(workdir / "config.json"), "parallel": "jit"})
    ckpt = Checkpointer(workdir / "checkpoints", read_only=True)
    try:
        steps = ckpt.all_steps()
        if not steps:
            raise FileNotFoundError(f"{workdir / 'checkpoints'}: no checkpoint yet")
        step = max(steps) if step is None else step
        if step not in steps:
            raise ValueError(f"--step: no checkpoint {step} in {workdir / 'checkpoints'} (have {sorted(steps)})")
        meta = ckpt.manager.restore(step, args=ocp_json_only())["meta"]
        vocab = meta.get("vocab")
        if vocab is None and (workdir / charlm.VOCAB_FILE).is_file():
            vocab = charlm.load_vocab(workdir).chars
        vocab_size = meta.get("vocab_size") or len(vocab)
        model, _, template, _ = build(config, vocab_size, model_fn)
        state, _ = ckpt.restore(step, template, jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
    finally:
        ckpt.close()
    nnx.update(model, state.params)
    model = nnx.view(model, deterministic=True) if any(
        hasattr(m, "deterministic") for _, m in nnx.iter_modules(model)) else model
    return model, config, vocab, step


def ocp_json_only() -> Any:
    import orbax.checkpoint as ocp

    return ocp.args.Composite(meta=ocp.args.JsonRestore())
