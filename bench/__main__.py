"""Run every benchmark in bench/ in turn: `python -m bench [NAME...]`."""

import importlib
import pkgutil
import sys
from pathlib import Path

wanted = sys.argv[1:]
for mod in sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])):
    if mod.startswith("bench_") and (not wanted or mod.removeprefix("bench_") in wanted or mod in wanted):
        print(f"==== {mod}", flush=True)
        importlib.import_module(f"bench.{mod}").main()
