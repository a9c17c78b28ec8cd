"""Differentially private optimization, accounted by dp_accounting."""
