"""Model construction: the two systems (`build_translation_model`), the label-smoothed loss, the engine's
training configuration and the loading of a trained run."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from jaxseq.studies.translation.data import settings_path
from jaxseq.studies.translation.presets import MODELS, TOKENIZER, Preset


def label_smoothed_loss(smoothing: float):
    """The engine's `loss_fn`: (sum of label-smoothed token cross-entropies, number of target tokens)."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {smoothing!r}")

    def loss_fn(module: Any, batch: dict, *, train: bool):
        import jax
        import jax.numpy as jnp

        logits = module(batch["src"], batch["src_lengths"], batch["tgt_in"])
        with jax.named_scope("loss"):
            # -log p_y = lse - z_y and -mean(log p) = lse - mean(z): the [batch, time, vocab] log-softmax is
            # never materialised. Writing it out (log_softmax, then gather and mean) cost 0.3-0.4 s more per
            # step for loss and gradient at 2048 tokens x 8k vocab on the 2-core CPU, about 20% of a step.
            z = logits.astype(jnp.float32)
            lse = jax.nn.logsumexp(z, axis=-1)
            z_y = jnp.take_along_axis(z, batch["tgt_out"][..., None], axis=-1)[..., 0]
            loss = lse - (1.0 - smoothing) * z_y - smoothing * z.mean(axis=-1)
            mask = (jnp.arange(logits.shape[1])[None, :] < batch["tgt_lengths"][:, None]).astype(jnp.float32)
            return jnp.sum(loss * mask), jnp.sum(mask)

    return loss_fn


def build_translation_model(kind: str, vocab_size: int, *, d_model: int, layers: int, num_heads: int = 4,
                            dropout: float = 0.1, max_len: int = 256, rngs: Any) -> Any:
    """The study's two systems on one joint vocabulary (shared/tied embeddings)."""
    from jaxseq.models.seq2seq import Seq2SeqAttention, TransformerSeq2Seq

    if kind == "lstm":
        return Seq2SeqAttention(vocab_size, vocab_size, d_model=d_model, encoder_layers=layers,
                                decoder_layers=layers, dropout=dropout, rngs=rngs)
    if kind == "transformer":
        return TransformerSeq2Seq(vocab_size, vocab_size, d_model=d_model, num_heads=num_heads,
                                  encoder_layers=layers, decoder_layers=layers, dropout=dropout, max_len=max_len,
                                  shared_embeddings=True, rngs=rngs)
    raise ValueError(f"--model: expected one of {', '.join(MODELS)}, got {kind!r}")


def model_fn(config: Any, vocab_size: int, rngs: Any) -> Any:
    """The engine's `model_fn`: the model a `TrainConfig` (model kind, size, dropout) names."""
    return build_translation_model(config.model, vocab_size, d_model=config.d_model, layers=config.layers,
                                   num_heads=config.num_heads, dropout=config.dropout, rngs=rngs)


def count_params(model: Any) -> int:
    from flax import nnx

    from jaxseq.train.state import count_params as count

    return count(nnx.state(model, nnx.Param))


def train_config(kind: str, preset: Preset, workdir: str | Path, **overrides: Any) -> Any:
    from jaxseq.train.config import TrainConfig

    size = preset.lstm if kind == "lstm" else preset.transformer
    cfg = TrainConfig(task="custom", model=kind, workdir=str(workdir), d_model=size["d_model"],
                      layers=size["layers"], num_heads=size.get("num_heads", 4), dropout=size["dropout"],
                      steps=preset.steps[kind], batch_size=preset.tokens_per_batch // 32, seq_len=32,
                      lr=preset.lr[kind], weight_decay=0.0, b2=0.98, eval_every=preset.eval_every,
                      eval_batches=4, log_every=max(1, min(50, preset.eval_every)), ckpt_every=preset.eval_every,
                      extra={"label_smoothing": preset.label_smoothing, "preset": preset.name})
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def load_run(workdir: str | Path) -> tuple[Any, Any, Any]:
    """(model, tokenizer, length buckets) of a trained run; one-line errors for a workdir without one."""
    from jaxseq.data import multi30k as M
    from jaxseq.train.loop import load_model

    workdir = Path(workdir)
    if not (workdir / TOKENIZER).is_file() or not settings_path(workdir).is_file():
        raise FileNotFoundError(f"--workdir {workdir}: no trained translation run here (run `jaxseq translate "
                                "train --workdir ...` first)")
    model, config, _, _ = load_model(workdir, model_fn=model_fn)
    model.eval()
    settings = json.loads(settings_path(workdir).read_text())
    return model, M.Tokenizer.load(workdir / TOKENIZER), settings.get("boundaries")
