"""Robust training: doubly robust instance-reweighted AT (attacks: core)."""
