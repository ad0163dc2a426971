"""Benchmarks: print numbers, never assert. Each bench_*.py has a main()."""
