"""Generative models.

One-step diffusion distillation (DisBack) and direct voxel grid radiance
fields (DVGO).
"""
