"""Optax transforms for centralized training, one file per paper."""
