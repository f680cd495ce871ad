"""hmrt.runtime: the lean inference runtime (numpy, OpenCV, numba; ORT/TensorRT optional).

Never imports torch, nor hmrt.train / hmrt.calib / hmrt.export: a robotics app installs hmrt
without the train extra and this package must work there.
"""
