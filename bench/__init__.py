"""Benchmarks that print ratios against a raw-Temporal baseline measured in the same run."""
