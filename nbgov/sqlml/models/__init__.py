"""The one representation of models shared by the optimizer and execution: ONNX types,
tree ensembles (forest, tree graph), pipelines (featurizer + model proper, with their
elementwise steps), and onnxruntime sessions on model bytes."""
