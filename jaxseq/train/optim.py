"""Optimiser: AdamW with linear warm-up + cosine decay, global-norm clipping (the usual LM recipe)."""
from __future__ import annotations

from typing import Any

import jax
import optax

from jaxseq.train.config import TrainConfig


def make_schedule(lr: float, *, warmup_steps: int, total_steps: int, end_lr_ratio: float = 0.1) -> optax.Schedule:
    """0 -> lr linearly over `warmup_steps`, then cosine down to lr * end_lr_ratio at `total_steps`."""
    if warmup_steps >= total_steps:
        return optax.linear_schedule(0.0, lr, max(1, warmup_steps))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=lr,
        warmup_steps=warmup_steps,
        decay_steps=total_steps,  # optax counts the warm-up inside decay_steps
        end_value=lr * end_lr_ratio,
    )


def decay_mask(params: Any) -> Any:
    """Weight decay on matrices only: biases and norm scales (ndim < 2) are not decayed."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(
    lr: float,
    *,
    total_steps: int,
    warmup_steps: int,
    end_lr_ratio: float = 0.1,
    weight_decay: float = 0.1,
    b1: float = 0.9,
    b2: float = 0.99,
    clip_norm: float | None = 1.0,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    schedule = make_schedule(lr, warmup_steps=warmup_steps, total_steps=total_steps, end_lr_ratio=end_lr_ratio)
    parts = []
    if clip_norm is not None and clip_norm > 0:
        parts.append(optax.clip_by_global_norm(clip_norm))
    parts.append(optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay, mask=decay_mask))
    return optax.chain(*parts), schedule


def optimizer_from_config(config: TrainConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
    return make_optimizer(
        config.lr,
        total_steps=config.steps,
        warmup_steps=config.warmup,
        end_lr_ratio=config.end_lr_ratio,
        weight_decay=config.weight_decay,
        b1=config.b1,
        b2=config.b2,
        clip_norm=config.clip_norm,
    )
