"""Benchmarks: `atelier bench …`, JSON out, every figure beside its baseline from the same run."""
