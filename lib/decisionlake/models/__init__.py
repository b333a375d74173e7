"""Behavioural models: specs as config, point-in-time training sets, MLlib, MLflow, scoring."""
