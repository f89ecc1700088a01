"""What goes on the robot: self-describing ONNX policy bundles, their export, the one
onnxruntime session factory and observation terms. Modules used by the executor import only
numpy and onnxruntime."""
