"""Reinforcement learning in continuous time: policy evaluation, TD."""
