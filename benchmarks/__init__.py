"""Benchmark scripts (run as files: ``python benchmarks/<name>.py``); `benchmarks.common` is their shared helper."""
