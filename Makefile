# The two commands a fresh machine needs (see README): `make demo` and `make test`.
PY ?= python3

.PHONY: setup-car setup demo test bench fuzz soak

setup-car:
	scripts/setup.sh car

setup:
	scripts/setup.sh full

demo: setup-car
	trey-agent demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m bench

# Boundary fuzzers with 2,000 examples per target (the normal run does 100): minutes.
fuzz:
	TREY_FUZZ_PROFILE=trey-fuzz $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz_boundaries.py

# The agent under every attack of issue #10 at once, with 20 SIGKILLs (~4 minutes).
soak:
	$(PY) -m bench.soak
