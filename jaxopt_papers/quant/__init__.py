"""Quantization-aware training: STE quantizers and teacher intervention."""
