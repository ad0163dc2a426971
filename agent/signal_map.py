"""DBC + signal map loading: which CAN message/signal carries each canonical signal.

Owned by the agent; can_sim uses the same bindings to encode, so sim and agent can
never disagree on IDs, scaling or enum values.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cantools

from agent import signals

DATA_DIR = Path(str(resources.files("agent") / "data"))
DEFAULT_DBC = DATA_DIR / "trey_vehicle.dbc"
DEFAULT_SIGNAL_MAP = DATA_DIR / "signal_map.toml"


class SignalMapError(ValueError):
    """A DBC or signal map that cannot be used; the message names the offending entry."""


@dataclass(frozen=True)
class Binding:
    canonical: str
    message: str
    frame_id: int
    signal: str
    factor: float = 1.0
    offset: float = 0.0
    # DBC value name -> canonical enum value (e.g. "KL15_ON" -> "ON"); None = names as-is.
    choices: dict[str, str] | None = None


@dataclass
class SignalMap:
    db: cantools.database.can.Database
    bindings: dict[str, Binding]                     # canonical name -> binding
    by_frame_id: dict[int, list[Binding]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_frame_id = {}
        for b in self.bindings.values():
            self.by_frame_id.setdefault(b.frame_id, []).append(b)

    @property
    def frame_ids(self) -> list[int]:
        """Mapped frame IDs (for kernel receive filters)."""
        return sorted(self.by_frame_id)

    def has(self, canonical: str) -> bool:
        return canonical in self.bindings

    def message(self, canonical: str):
        """The cantools Message carrying a canonical signal."""
        return self.db.get_message_by_name(self.bindings[canonical].message)


def load_signal_map(dbc: str | Path | None = None, signal_map: str | Path | None = None) -> SignalMap:
    """Load a DBC and the TOML map binding canonical names to it. Errors name the entry."""
    dbc_path = Path(dbc) if dbc else DEFAULT_DBC
    map_path = Path(signal_map) if signal_map else DEFAULT_SIGNAL_MAP
    try:
        db = cantools.database.load_file(str(dbc_path), strict=True)
    except FileNotFoundError:
        raise SignalMapError(f"DBC file not found: {dbc_path}") from None
    except Exception as exc:  # cantools raises several parse error types
        raise SignalMapError(f"cannot parse DBC {dbc_path}: {exc}") from None
    try:
        with open(map_path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise SignalMapError(f"signal map not found: {map_path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SignalMapError(f"cannot parse signal map {map_path}: {exc}") from None

    unknown_top = set(raw) - {"signals"}
    if unknown_top:
        raise SignalMapError(f"{map_path}: unknown key(s) {sorted(unknown_top)}")
    bindings: dict[str, Binding] = {}
    for name, spec in raw.get("signals", {}).items():
        where = f"{map_path}: signals.\"{name}\""
        if name not in signals.ALL:
            raise SignalMapError(f"{where}: not a canonical signal name")
        if not isinstance(spec, dict):
            raise SignalMapError(f"{where}: must be a table")
        extra = set(spec) - {"message", "signal", "factor", "offset", "choices"}
        if extra:
            raise SignalMapError(f"{where}: unknown key(s) {sorted(extra)}")
        try:
            msg = db.get_message_by_name(spec["message"])
        except KeyError:
            raise SignalMapError(f"{where}: message {spec.get('message')!r} not in DBC {dbc_path}") from None
        try:
            msg.get_signal_by_name(spec["signal"])
        except KeyError:
            raise SignalMapError(f"{where}: signal {spec.get('signal')!r} not in message {msg.name}") from None
        factor = spec.get("factor", 1.0)
        offset = spec.get("offset", 0.0)
        if not isinstance(factor, (int, float)) or not isinstance(offset, (int, float)) or factor == 0:
            raise SignalMapError(f"{where}: factor/offset must be numbers, factor non-zero")
        choices = spec.get("choices")
        if choices is not None and not (isinstance(choices, dict) and all(isinstance(v, str) for v in choices.values())):
            raise SignalMapError(f"{where}: choices must map DBC value names to strings")
        bindings[name] = Binding(name, msg.name, msg.frame_id, spec["signal"], float(factor), float(offset), choices)
    return SignalMap(db, bindings)
