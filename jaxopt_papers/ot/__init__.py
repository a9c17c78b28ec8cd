"""Optimal transport: maps, regularizers and estimators, one file per paper."""
