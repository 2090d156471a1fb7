"""The model catalog: ONNX models stored in the database (bytes, sha256, versions,
signature), loading them from files, bytes, ModelProto or estimators, and the
CREATE / SHOW / DESCRIBE / DROP MODEL statements."""
