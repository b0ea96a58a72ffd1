"""jaxseq: sequence models in JAX/Flax NNX, and a measured study of LSTMs against Transformers."""

__version__ = "0.1.0"
