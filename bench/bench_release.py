"""Release verification on the car: what python-tuf would cost vs the agent's own checks.

    python -m bench.bench_release [--tuf-path DIR]      # DIR: pip install --target DIR tuf

Prints, in the shipped unit's Environment= (PYTHONOPTIMIZE=2, precompiled bytecode), the peak
RSS and import time of the agent's sync stack alone, with agent.release_metadata, and with
tuf.ngclient on top (if importable from DIR or the environment); and the time to verify one
release (signature, version, expiry, slot, cohort) and its bundle's length + sha256.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = "import agent.sync, agent.bundle, cryptography.hazmat.primitives.asymmetric.ed25519, paho.mqtt.client\n"


def _probe(env, extra: str) -> tuple[float, float]:
    code = (BASE + "import time; t = time.perf_counter()\n" + extra +
            "\nprint(open('/proc/self/status').read().split('VmHWM:')[1].split()[0], time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr.strip().splitlines()[-1])
    kb, s = out.stdout.split()
    return int(kb) / 1024, float(s)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="bench_release")
    ap.add_argument("--tuf-path", default="", help="directory with tuf installed (pip install --target)")
    args = ap.parse_args(argv if argv is not None else [])
    sys.path.insert(0, str(ROOT))
    from tests.daemon_support import unit_environment
    env = {**os.environ, **unit_environment(),
           "PYTHONPYCACHEPREFIX": os.path.join(tempfile.gettempdir(), "trey-agent-pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), args.tuf_path, env.get("PYTHONPATH", "")) if p)
    cases = [("agent sync stack", ""), ("+ agent.release_metadata + model_downlink",
                                        "import agent.release_metadata, agent.model_downlink"),
             ("+ tuf.ngclient", "from tuf.ngclient import Updater\nfrom tuf.api.metadata import Metadata")]
    for label, extra in cases:
        try:
            _probe(env, extra)                       # warm the bytecode cache
            runs = [_probe(env, extra) for _ in range(3)]
        except RuntimeError as exc:
            print(f"{label}: not measured ({exc})")
            continue
        print(f"{label}: peak RSS {min(r[0] for r in runs):.1f} MB, import {min(r[1] for r in runs) * 1000:.0f} ms")

    from agent import release_metadata as R
    from agent.bundle import DEFAULT_BATTERY_BUNDLE
    from export.bundle import DEV_SIGNING_KEY, tar_bundle
    from export.release import release_doc
    tar = tar_bundle(DEFAULT_BATTERY_BUNDLE)
    with tempfile.TemporaryDirectory() as d:
        trust = R.TrustStore(d)
        docs = [release_doc("battery", v, tar, {"name": "b", "version": str(v)}, [DEV_SIGNING_KEY])
                for v in range(1, 201)]
        t0 = time.perf_counter()
        for doc in docs:
            rel = trust.check_release(doc, "battery")
            R.check_target(rel, tar)
        per = (time.perf_counter() - t0) / len(docs)
    print(f"verify one release + its {len(tar) / 1024:.0f} KB bundle (length + sha256): {per * 1000:.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
