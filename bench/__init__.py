"""fumewatch benchmarks: ``python bench/run.py [--quick]`` (method and figures: BENCHMARKS.md)."""
