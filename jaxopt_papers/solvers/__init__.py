"""Scan-driven solvers, one file per paper."""
