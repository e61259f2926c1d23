"""Benchmarks against peers, measured side by side in one run (`python -m bench`)."""
