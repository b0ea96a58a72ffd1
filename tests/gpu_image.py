"""What the GPU image lacks, for tests that run code as the device would: ``GPU_IMAGE_BLOCKER`` is a
``sitecustomize.py`` that makes importing tensorboardX or statsforecast fail, as it does there.
Imported as ``from gpu_image import GPU_IMAGE_BLOCKER`` (tests/ is on the path, as for fast_compile)."""

GPU_IMAGE_BLOCKER = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorboardX", "statsforecast"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
"""
