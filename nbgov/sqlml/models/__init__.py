"""The one representation of models the optimizer and the executors share."""
