# The two commands a fresh machine needs (see README): `make demo` and `make test`.
PY ?= python3

.PHONY: setup-car setup demo test bench

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
