"""Hypothesis profiles for the boundary fuzzers (tests/test_fuzz_*.py).

    trey-suite  the normal run: TREY_FUZZ_EXAMPLES examples per target (default 100)
    trey-fuzz   `make fuzz`: 2,000 examples per target (TREY_FUZZ_EXAMPLES overrides)

Selected with TREY_FUZZ_PROFILE; applied per test with @fuzz (not load_profile: other
tests' Hypothesis settings stay as they are). No deadline: the machine is shared.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large,
             HealthCheck.filter_too_much, HealthCheck.large_base_example]
settings.register_profile("trey-suite", max_examples=int(os.environ.get("TREY_FUZZ_EXAMPLES", "100")),
                          deadline=None, suppress_health_check=_SUPPRESS, derandomize=False)
settings.register_profile("trey-fuzz", max_examples=int(os.environ.get("TREY_FUZZ_EXAMPLES", "2000")),
                          deadline=None, suppress_health_check=_SUPPRESS)
PROFILE = settings.get_profile(os.environ.get("TREY_FUZZ_PROFILE", "trey-suite"))


def fuzz(fn):
    """@fuzz: the selected profile's settings for one test."""
    return settings(PROFILE)(fn)


def mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    """A valid input with some bytes changed and maybe truncated (most bugs hide near valid)."""
    b = bytearray(data)
    for pos, val in flips:
        if b:
            b[pos % len(b)] = val
    if cut is not None and b:
        del b[cut % len(b):]
    return bytes(b)
