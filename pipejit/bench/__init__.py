"""Benchmarks of pipejit against the plain transformers pipeline, on the same model and data."""
