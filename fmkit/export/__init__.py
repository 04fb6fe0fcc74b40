"""Export: a bundle -> an ONNX bundle that ONNX Runtime runs with the same ``predict``."""
