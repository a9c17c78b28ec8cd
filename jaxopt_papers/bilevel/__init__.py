"""Bilevel solvers (BO-REP, RARTS) and their shared hypergradient pieces."""
