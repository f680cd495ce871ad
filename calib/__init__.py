"""hmrt.calib: INT8 calibration data, Q/DQ graphs, legacy TensorRT calibrator, precision report."""
