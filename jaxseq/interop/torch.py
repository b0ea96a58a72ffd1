"""Load ``torch.nn.LSTM`` / ``torch.nn.GRU`` weights into :class:`jaxseq.nn.LSTM` / ``GRU``.

torch is imported lazily, only to read a torch module; a plain state_dict of NumPy arrays (keys
``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, with ``_reverse`` for
the backward direction) works without torch installed.

Layout map (PyTorch -> jaxseq, per layer k and direction d):
  LSTM: ``w_ih = weight_ih.T [in, 4H]``, ``w_hh = weight_hh.T [H, 4H]``, ``b = bias_ih + bias_hh``
  GRU:  ``w_ih = weight_ih.T [in, 3H]``, ``w_hh = weight_hh.T [H, 3H]``, ``b_ih``, ``b_hh`` as is.
Gate orders (LSTM i,f,g,o; GRU r,z,n) are the same on both sides, and a bidirectional layer's
output is ``concat([forward, backward])`` on both sides, so layer k>0 input widths match.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxseq.nn.recurrent import GRU, LSTM

_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")
_GATES = {"lstm": 4, "gru": 3}


def _to_numpy_state_dict(module_or_state_dict: Any) -> tuple[dict[str, np.ndarray], dict]:
    """-> (state_dict of float32 numpy arrays, torch module attributes or {})."""
    if isinstance(module_or_state_dict, Mapping):
        out = {}
        for k, v in module_or_state_dict.items():
            if hasattr(v, "detach"):  # a torch state_dict: tensors
                v = v.detach().cpu().float().numpy()
            out[str(k)] = np.asarray(v, dtype=np.float32)
        return out, {}
    import torch  # lazy: only needed when handed a torch module

    if not isinstance(module_or_state_dict, (torch.nn.LSTM, torch.nn.GRU)):
        raise TypeError(
            "load_torch_rnn: module_or_state_dict must be a torch.nn.LSTM, torch.nn.GRU or a"
            f" state_dict mapping, got {type(module_or_state_dict).__name__}"
        )
    m = module_or_state_dict
    if getattr(m, "proj_size", 0):
        raise ValueError(f"load_torch_rnn: torch.nn.LSTM with proj_size={m.proj_size} is not"
                         " supported (jaxseq.nn.LSTM has no projection)")
    attrs = dict(kind="lstm" if isinstance(m, torch.nn.LSTM) else "gru",
                 input_size=m.input_size, hidden_size=m.hidden_size, num_layers=m.num_layers,
                 bidirectional=m.bidirectional)
    sd = {k: v.detach().cpu().float().numpy() for k, v in m.state_dict().items()}
    return sd, attrs


def _describe(sd: dict[str, np.ndarray]) -> dict:
    """Infer kind, sizes, num_layers and bidirectionality from a state_dict's keys and shapes."""
    unknown = [k for k in sd if not _KEY.match(k)]
    if unknown:
        raise ValueError(f"load_torch_rnn: unexpected state_dict keys {unknown} (expected"
                         " weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}[_reverse])")
    for required in ("weight_ih_l0", "weight_hh_l0"):
        if required not in sd:
            raise ValueError(f"load_torch_rnn: state_dict is missing {required!r}")
    w_hh = sd["weight_hh_l0"]
    if w_hh.ndim != 2:
        raise ValueError(f"load_torch_rnn: weight_hh_l0 must be 2-D [gates*hidden, hidden], got"
                         f" shape {w_hh.shape}")
    hidden = w_hh.shape[1]
    gates, rem = divmod(w_hh.shape[0], hidden)
    kind = {4: "lstm", 3: "gru"}.get(gates)
    if rem or kind is None:
        raise ValueError(f"load_torch_rnn: weight_hh_l0 shape {w_hh.shape} is neither LSTM"
                         " [4H, H] nor GRU [3H, H]")
    layers = {int(_KEY.match(k).group(2)) for k in sd}
    num_layers = max(layers) + 1
    return dict(kind=kind, input_size=sd["weight_ih_l0"].shape[1], hidden_size=hidden,
                num_layers=num_layers, bidirectional=any(k.endswith("_reverse") for k in sd))


def _get(sd: dict, key: str, shape: tuple[int, ...]) -> np.ndarray:
    if key not in sd:
        raise ValueError(f"load_torch_rnn: state_dict is missing {key!r} (expected shape {shape})")
    value = sd[key]
    if tuple(value.shape) != shape:
        raise ValueError(f"load_torch_rnn: {key} has shape {tuple(value.shape)}, the target needs"
                         f" {shape}")
    return value


def load_torch_rnn(module_or_state_dict: Any, target: LSTM | GRU) -> LSTM | GRU:
    """Copy a ``torch.nn.LSTM``/``GRU`` (or its state_dict) into ``target`` in place; returns it.

    ``target`` must match: same kind, ``in_features``, ``hidden_size``, ``num_layers`` and
    ``bidirectional``. A state_dict without any ``bias_*`` keys (``bias=False``) loads zero biases.
    Parameters keep ``target``'s ``param_dtype``.
    """
    if not isinstance(target, (LSTM, GRU)):
        raise TypeError(f"load_torch_rnn: target must be a jaxseq.nn.LSTM or GRU, got"
                        f" {type(target).__name__}")
    sd, _ = _to_numpy_state_dict(module_or_state_dict)
    info = _describe(sd)
    kind = "lstm" if isinstance(target, LSTM) else "gru"
    if info["kind"] != kind:
        raise ValueError(f"load_torch_rnn: the weights are a {info['kind'].upper()}, target is a"
                         f" {type(target).__name__}")
    for attr, mine in (("num_layers", target.num_layers), ("bidirectional", target.bidirectional)):
        if info[attr] != mine:
            raise ValueError(f"load_torch_rnn: {attr} differs: weights {info[attr]}, target {mine}")
    has_bias = any(k.startswith("bias_") for k in sd)
    H, G, D = target.hidden_size, _GATES[kind], target.num_directions
    for k in range(target.num_layers):
        width = target.in_features if k == 0 else H * D
        for d in range(D):
            sfx = f"l{k}" + ("_reverse" if d == 1 else "")
            w_ih = _get(sd, f"weight_ih_{sfx}", (G * H, width)).T
            w_hh = _get(sd, f"weight_hh_{sfx}", (G * H, H)).T
            if has_bias:
                b_ih = _get(sd, f"bias_ih_{sfx}", (G * H,))
                b_hh = _get(sd, f"bias_hh_{sfx}", (G * H,))
            else:
                b_ih = b_hh = np.zeros((G * H,), np.float32)
            values = {"w_ih": w_ih, "w_hh": w_hh}
            if kind == "lstm":
                values["b"] = b_ih + b_hh  # the op keeps one summed bias
            else:
                values.update(b_ih=b_ih, b_hh=b_hh)  # b_hn stays inside r * (W_hn h + b_hn)
            cell = target.layers[k][d]
            for name, value in values.items():
                param: nnx.Param = getattr(cell, name)
                param[...] = jnp.asarray(value, dtype=param[...].dtype)
    return target


def _from_torch(kind: str, module_or_state_dict: Any, rngs: nnx.Rngs | None,
                **kwargs: Any) -> LSTM | GRU:
    sd, attrs = _to_numpy_state_dict(module_or_state_dict)
    info = attrs or _describe(sd)
    if info["kind"] != kind:
        raise ValueError(f"{kind}_from_torch: the weights are a {info['kind'].upper()}")
    cls = LSTM if kind == "lstm" else GRU
    target = cls(info["input_size"], info["hidden_size"], num_layers=info["num_layers"],
                 bidirectional=info["bidirectional"], rngs=rngs or nnx.Rngs(0), **kwargs)
    return load_torch_rnn(sd, target)


def lstm_from_torch(module_or_state_dict: Any, *, rngs: nnx.Rngs | None = None,
                    **kwargs: Any) -> LSTM:
    """Build a :class:`jaxseq.nn.LSTM` from a ``torch.nn.LSTM`` or its state_dict.

    Sizes, ``num_layers`` and ``bidirectional`` come from the module (or are inferred from the
    state_dict); ``kwargs`` (``dtype``, ``param_dtype``, ``residual``, ``dropout``, ...) go to the
    constructor.
    """
    return _from_torch("lstm", module_or_state_dict, rngs, **kwargs)


def gru_from_torch(module_or_state_dict: Any, *, rngs: nnx.Rngs | None = None,
                   **kwargs: Any) -> GRU:
    """Build a :class:`jaxseq.nn.GRU` from a ``torch.nn.GRU`` or its state_dict (see
    :func:`lstm_from_torch`)."""
    return _from_torch("gru", module_or_state_dict, rngs, **kwargs)
