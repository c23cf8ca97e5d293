"""The Workshop: evaluate (perplexity, KL divergence), benchmark, compare, quantize and convert models."""
