"""Weights to and from other libraries: `torch` (torch.nn.LSTM/GRU) and `flax_cells` (flax.nnx
LSTMCell, OptimizedLSTMCell, GRUCell). Modules load on first access (`jaxseq.interop.flax_cells`)."""
from jaxseq import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
