"""Representation bottlenecks: the codebook bottleneck."""
