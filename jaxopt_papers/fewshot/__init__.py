"""Transductive few-shot learning: Laplacian-regularized clustering (SLK)."""
