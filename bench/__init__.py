"""Benchmark scripts (run as ``python bench/<script>.py``) and their shared kit, ``bench.memkit``."""
