"""Federated learning on one simulator: clients are an axis."""
