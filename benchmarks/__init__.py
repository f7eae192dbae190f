"""Benchmarks: workloads of BENCHMARKS.md run by datarax and by hand-written references."""
