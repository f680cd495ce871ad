"""hmrt: single-image 3D human mesh recovery from PyTorch training to real-time TensorRT/ORT.

Sub-packages (imports point one way: runtime <- train <- calib <- export):
``hmrt.runtime`` (lean, never torch), ``hmrt.train``, ``hmrt.calib``, ``hmrt.export``.
"""

__version__ = "0.1.0"
