"""Synthetic problems and bundled datasets, every generator driven by a key."""
