"""Benchmarks: print numbers, never assert. Each bench_*.py has a main()."""


def pin_one_core() -> None:
    """Run this process on one core (the figures are per core; the other one stays for the box)."""
    import os
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
