"""Flax NNX layers: recurrent stacks, attention, Transformer blocks, embeddings, pure-function form."""
from flax import nnx as _nnx

from jaxseq.nn import attention as _attention
from jaxseq.nn import transformer as _transformer
from jaxseq.nn.attention import KVCache, MultiHeadAttention
from jaxseq.nn.embedding import Embedding, FrozenParam, load_word_vectors
from jaxseq.nn.functional import pure
from jaxseq.nn.recurrent import GRU, LSTM, MinGRU, MinLSTM, OpParams
from jaxseq.nn.signature import init_signature
from jaxseq.nn.transformer import (DecoderCache, MLP, TransformerBlock, TransformerDecoder,
                                   TransformerEncoder)


def _decorate_module_classes(module) -> None:
    """Apply `init_signature` to every nnx.Module class defined in `module` (private bases too)."""
    for obj in list(vars(module).values()):
        if isinstance(obj, type) and issubclass(obj, _nnx.Module) and obj.__module__ == module.__name__:
            init_signature(obj)


# nnx.Module's metaclass shows every constructor as `(*args, **kwargs)` (see jaxseq.nn.signature).
# recurrent.py and embedding.py decorate their classes; the attention and Transformer modules are
# covered here, so the fix lives in one place for them too.
_decorate_module_classes(_attention)
_decorate_module_classes(_transformer)

__all__ = [
    "DecoderCache", "GRU", "KVCache", "LSTM", "MLP", "MinGRU", "MinLSTM", "MultiHeadAttention", "Embedding", "FrozenParam",
    "OpParams", "TransformerBlock", "TransformerDecoder", "TransformerEncoder", "init_signature",
    "load_word_vectors", "pure",
]
