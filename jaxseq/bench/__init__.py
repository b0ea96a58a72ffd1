"""The measuring harness: timing (`timing`), FLOP and memory accounting (`flops`), what a workload is and
how it is measured (`measure`), benchmark workloads (`workloads`, `generation`), the resumable sweep runner
(`sweep`), where bench records go (`results`) and the op benchmarks against the torch/flax anchors
(`ops_bench`, `jaxseq bench ops`). Whole studies built on it live in `jaxseq.studies`."""
from jaxseq import submodule_getattr

# Modules load on first attribute access (jaxseq.bench.<module>), keeping `import jaxseq.bench` cheap.
__getattr__ = submodule_getattr(__name__, __path__)
