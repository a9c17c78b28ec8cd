"""Small Flax (Linen) testbed models exposing ``apply_fn(params, x)``."""
