"""hmrt.export: ONNX export with deployment rewrites, graph audit, FP16 graph, TensorRT engines, Triton."""
