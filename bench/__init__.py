"""Benchmarks for LDN Directory search: `python -m bench.run` (or `make bench`).

See bench/README.md for what is measured, the targets and the latest numbers.
"""
