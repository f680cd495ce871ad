"""hmrt.calib: INT8 calibration data, Q/DQ graphs, the legacy TensorRT calibrator, precision report."""
