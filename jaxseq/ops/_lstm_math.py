"""The LSTM cell's elementwise maths, gate by gate, shared by the XLA scans (``jaxseq.ops.rnn`` and the
ops built on it) and the Pallas kernels (``jaxseq.ops.pallas_lstm``).

The functions take and return one array per gate rather than a ``[..., 4H]`` block, because a Pallas
kernel holds each gate as its own tile (Triton has no cheap concatenation); the XLA scans slice and
concatenate around them. Same operations in the same order in both, so both round alike.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def cell_forward(zi: Array, zf: Array, zg: Array, zo: Array, c_prev: Array):
    """Activations (i, f, g, o), c_t = f c_{t-1} + i g and tanh(c_t) from the gate pre-activations."""
    i = jax.nn.sigmoid(zi)
    f = jax.nn.sigmoid(zf)
    g = jnp.tanh(zg)
    o = jax.nn.sigmoid(zo)
    c_new = f * c_prev + i * g
    return (i, f, g, o), c_new, jnp.tanh(c_new)


def backward_products(gates, c_prev: Array, tc: Array):
    """The products the backward step needs, k = (k_i, k_f, k_g, k_o) and pf = (pf_h, pf_c):
    ``dc_t = dc + dh * pf_h``, ``dz = (dc_t k_i, dc_t k_f, dc_t k_g, dh k_o)``, ``dc_{t-1} = dc_t * pf_c``.
    ``tc`` is tanh(c_t)."""
    i, f, g, o = gates
    k = (g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g), tc * o * (1.0 - o))
    return k, (o * (1.0 - tc * tc), f)
