"""Data: Tiny Shakespeare / user text (`charlm`), M4 (`m4`), synthetic long-range tasks (`synthetic`)."""
from jaxseq import submodule_getattr

# Modules load on first attribute access (jaxseq.data.<module>), keeping `import jaxseq.data` cheap.
__getattr__ = submodule_getattr(__name__, __path__)
