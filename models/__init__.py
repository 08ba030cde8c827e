"""One sub-package per clinical task, plus the runtime that runs networks (ONNX Runtime or Triton)."""
