"""Graph solvers: implicit (fixed-point) graph neural networks."""
