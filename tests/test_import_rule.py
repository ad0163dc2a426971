"""DESIGN's one-way rule, checked statically over every module that ships to the car:
agent/ imports only its runtime deps and the stdlib; never export/, can_sim/ or the
cloud-side stack. (A runtime check of a real agent process lives with the daemon tests.)"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_THIRD_PARTY = {"numpy", "onnxruntime", "can", "cantools", "paho", "serial", "msgpack", "cryptography",
                       "isotp"}   # can-isotp: OBD-II (agent/obd.py)


def _imports(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def test_agent_imports_only_runtime_deps_and_stdlib():
    stdlib = set(sys.stdlib_module_names)
    bad = []
    files = sorted((ROOT / "agent").rglob("*.py"))
    assert len(files) > 5
    for f in files:
        for line, mod in _imports(f):
            if mod != "agent" and mod not in stdlib and mod not in ALLOWED_THIRD_PARTY:
                bad.append(f"{f.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "agent/ must not import these:\n" + "\n".join(bad)
