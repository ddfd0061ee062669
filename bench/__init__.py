"""Benchmarks: `python -m bench.<name>`; figures and the commands that made them are in BENCHMARKS.md."""
