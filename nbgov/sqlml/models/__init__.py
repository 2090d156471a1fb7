"""The one representation of models shared by the optimizer and execution: ONNX types,
tree ensembles (forest, tree graph), and onnxruntime sessions on model bytes."""
