"""Flax NNX layers: recurrent stacks, attention, Transformer blocks, embeddings, pure-function form."""
from jaxseq.nn.attention import MultiHeadAttention
from jaxseq.nn.embedding import Embedding, FrozenParam, load_word_vectors
from jaxseq.nn.functional import pure
from jaxseq.nn.recurrent import GRU, LSTM, MinGRU, MinLSTM, OpParams
from jaxseq.nn.transformer import MLP, TransformerBlock, TransformerDecoder, TransformerEncoder

__all__ = [
    "GRU", "LSTM", "MLP", "MinGRU", "MinLSTM", "MultiHeadAttention", "Embedding", "FrozenParam",
    "OpParams", "TransformerBlock", "TransformerDecoder", "TransformerEncoder", "load_word_vectors",
    "pure",
]
