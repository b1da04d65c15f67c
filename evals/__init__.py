"""Metrics as pure functions, error injection and benchmarks."""
