"""Robust training: adversarial attacks and (later) doubly robust AT."""
