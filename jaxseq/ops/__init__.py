"""Pure JAX ops (no Flax): LSTM/GRU scans (`rnn`), parallel linear recurrences and minGRU/minLSTM
(`linear_recurrence`), attention kernels (`attention`), one-step alignment attention (`alignment`),
masks (`masks`) and positional encodings (`positional`)."""
from jaxseq import submodule_getattr

# Modules load on first attribute access (jaxseq.ops.<module>), keeping `import jaxseq.ops` cheap.
__getattr__ = submodule_getattr(__name__, __path__)
