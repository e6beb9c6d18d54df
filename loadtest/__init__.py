"""Load generator, baseline echo server and benchmark runner (BENCHMARKS.md)."""
