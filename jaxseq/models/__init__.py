"""Whole models: `lm` (LanguageModel), `classifier`, `forecasters`, `esrnn`, `statistical`."""
from jaxseq import submodule_getattr

# Modules load on first attribute access (jaxseq.models.<module>), keeping `import jaxseq.models` cheap.
__getattr__ = submodule_getattr(__name__, __path__)
