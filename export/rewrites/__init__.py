"""Deployment rewrites: module swaps applied to a built model before ONNX export.

Each rewrite lives in its own module and says why it exists. They replace submodules *from the
outside* (after ``build()``), so the training code stays the reference and every swap is tested
for equality against the module it replaces.
"""

from hmrt.export.rewrites.apply import RewriteReport, apply_rewrites

__all__ = ["RewriteReport", "apply_rewrites"]
