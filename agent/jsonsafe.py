"""JSON that never fails on the agent's own values (one owner for alerts, MQTT payloads and
the HMI): NaN/inf, which JSON lacks and browsers reject, become null; numpy scalars and
arrays become plain numbers and lists; dates become ISO strings."""

from __future__ import annotations

import math


def finite(o):
    """A copy of o with every non-finite float replaced by None (recursing into containers)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if hasattr(o, "tolist"):                     # numpy scalar or array
        return finite(o.tolist())
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite(v) for v in o]
    return o


def jsonable(o):
    """`default=` for json.dumps: numpy values and dates; anything else is a TypeError."""
    if hasattr(o, "tolist"):                     # numpy scalar or array
        return o.tolist()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
