"""DBC + signal map loading: which CAN message/signal carries each canonical signal.

Owned by the agent; can_sim uses the same bindings to encode, so sim and agent can
never disagree on IDs, scaling or enum values.

Messages are identified by (frame id, extended): an extended (29-bit) message may carry an
ID <= 0x7FF and is a different frame from the standard one with the same number.

Value names (DBC `VAL_` tables) apply only to the enum canonical signal
(`Vehicle.LowVoltageSystemState`); on every numeric signal they name the ECU's error codes
("SNA", "Invalid", "Init", ...), which the decoder drops as `sentinel` (docs/rollup.md).
Mistakes in a map are load-time errors naming the file, the entry and the item.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cantools

from agent import signals
from agent.transforms import TRANSFORM_KEYS, Transform, TransformError
from agent.transforms import parse as parse_transform

log = logging.getLogger("agent.signal_map")

DATA_DIR = Path(str(resources.files("agent") / "data"))
DEFAULT_DBC = DATA_DIR / "trey_vehicle.dbc"
DEFAULT_SIGNAL_MAP = DATA_DIR / "signal_map.toml"

# Canonical signals whose values are names, and the names allowed.
ENUM_SIGNALS = {signals.SYSTEM_STATE: signals.SYSTEM_STATES}
_KEYS = {"message", "signal", "factor", "offset", "choices", *TRANSFORM_KEYS}


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
    extended: bool = False
    transform: Transform | None = None      # terminals / mapping / valid (agent.transforms)

    @property
    def key(self) -> tuple[int, bool]:
        return (self.frame_id, self.extended)

    @property
    def is_enum(self) -> bool:
        return self.canonical in ENUM_SIGNALS


@dataclass
class SignalMap:
    db: cantools.database.can.Database
    bindings: dict[str, Binding]                     # canonical name -> binding
    by_frame_id: dict[int, list[Binding]] = field(default_factory=dict)
    by_key: dict[tuple[int, bool], list[Binding]] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        self.by_frame_id, self.by_key = {}, {}
        for b in self.bindings.values():
            self.by_frame_id.setdefault(b.frame_id, []).append(b)
            self.by_key.setdefault(b.key, []).append(b)

    @property
    def frame_ids(self) -> list[int]:
        """Mapped frame IDs (numbers only; see frame_keys for the extended flag)."""
        return sorted(self.by_frame_id)

    @property
    def frame_keys(self) -> list[tuple[int, bool]]:
        """Mapped (frame id, extended) pairs (for kernel receive filters)."""
        return sorted(self.by_key)

    def has(self, canonical: str) -> bool:
        return canonical in self.bindings

    def message(self, canonical: str):
        """The cantools Message carrying a canonical signal."""
        return self.db.get_message_by_name(self.bindings[canonical].message)

    def message_for(self, binding: Binding):
        return self.db.get_message_by_name(binding.message)


def signal_fits(sig, nbytes: int) -> bool:
    """Does a signal lie inside a payload of nbytes (either byte order)?"""
    if sig.byte_order == "little_endian":
        return 0 <= sig.start and sig.start + sig.length <= 8 * nbytes
    msb = (nbytes - 1 - sig.start // 8) * 8 + sig.start % 8
    return msb - sig.length + 1 >= 0 and msb < 8 * nbytes


def load_dbc(dbc_path: Path):
    """Strict first; production DBCs often have overlapping signals in messages the map never
    uses, so a file that only fails the strict checks loads non-strict (with a warning): the
    decoder checks every mapped signal against its frame itself."""
    try:
        return cantools.database.load_file(str(dbc_path), strict=True)
    except FileNotFoundError:
        raise SignalMapError(f"DBC file not found: {dbc_path}") from None
    except Exception as exc:  # cantools raises several parse error types
        strict_exc = exc
    try:
        db = cantools.database.load_file(str(dbc_path), strict=False)
    except Exception as exc:
        raise SignalMapError(f"cannot parse DBC {dbc_path}: {exc}") from None
    # A shipped profile's DBC is known to need it; someone else's deserves a warning.
    level = logging.INFO if Path(dbc_path).resolve().is_relative_to(DATA_DIR.resolve()) else logging.WARNING
    log.log(level, "DBC %s loaded non-strict: %s", dbc_path, str(strict_exc).splitlines()[0][:200])
    return db


def load_signal_map(dbc: str | Path | None = None, signal_map: str | Path | None = None) -> SignalMap:
    """Load a DBC and the TOML map binding canonical names to it. Errors name the entry."""
    dbc_path = Path(dbc) if dbc else DEFAULT_DBC
    map_path = Path(signal_map) if signal_map else DEFAULT_SIGNAL_MAP
    db = load_dbc(dbc_path)
    try:
        with open(map_path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise SignalMapError(f"signal map not found: {map_path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SignalMapError(f"cannot parse signal map {map_path}: {exc}") from None
    except OSError as exc:
        raise SignalMapError(f"cannot read signal map {map_path}: {exc}") from None
    return signal_map_from_dict(db, raw, str(map_path), str(dbc_path))


def signal_map_from_dict(db, raw: dict, map_path: str = "<map>", dbc_path: str = "<dbc>") -> SignalMap:
    unknown_top = set(raw) - {"signals"}
    if unknown_top:
        raise SignalMapError(f"{map_path}: unknown key(s) {sorted(unknown_top)}")
    entries = raw.get("signals", {})
    if not isinstance(entries, dict):
        raise SignalMapError(f"{map_path}: signals must be a table")
    bindings: dict[str, Binding] = {}
    for name, spec in entries.items():
        where = f"{map_path}: signals.\"{name}\""
        if name not in signals.ALL:
            raise SignalMapError(f"{where}: not a canonical signal name")
        if not isinstance(spec, dict):
            raise SignalMapError(f"{where}: must be a table")
        bindings[name] = _binding(db, name, spec, where, dbc_path)
    _check_messages(db, bindings, map_path)
    return SignalMap(db, bindings, source=map_path)


def _binding(db, name: str, spec: dict, where: str, dbc_path: str) -> Binding:
    extra = set(spec) - _KEYS
    if extra:
        raise SignalMapError(f"{where}: unknown key(s) {sorted(extra)}")
    for key in ("message",) + (() if "terminals" in spec else ("signal",)):
        if key not in spec:
            raise SignalMapError(f"{where}: missing key '{key}'")
        if not isinstance(spec[key], str):
            raise SignalMapError(f"{where}.{key}: must be a string, got {spec[key]!r}")
    try:
        msg = db.get_message_by_name(spec["message"])
    except KeyError:
        raise SignalMapError(f"{where}.message: {spec['message']!r} not in DBC {dbc_path}") from None
    try:
        transform = parse_transform(name, spec, msg, where)
    except TransformError as exc:
        raise SignalMapError(str(exc)) from None
    sig_name = transform.terminals[0][1] if transform and transform.terminals else spec["signal"]
    try:
        sig = msg.get_signal_by_name(sig_name)
    except KeyError:
        raise SignalMapError(f"{where}.signal: {sig_name!r} not in message {msg.name}") from None
    for sname in [sig.name] + (transform.aux_signals() if transform else []):
        ssig = msg.get_signal_by_name(sname)
        if not signal_fits(ssig, msg.length):
            raise SignalMapError(f"{where}: signal {sname} (start {ssig.start}, {ssig.length} bits) does not fit "
                                 f"in the {msg.length}-byte message {msg.name}")
    if (name not in ENUM_SIGNALS and transform is None and sig.choices and not sig.is_float
            and sig.length <= 16 and len(sig.choices) >= (1 << sig.length)):
        raise SignalMapError(f"{where}: every value of {sig.name} has a name in the DBC, and on a numeric signal "
                             f"names are error codes; say what they mean with mapping = [{{ from = .., to = .. }}]")
    factor = spec.get("factor", 1.0)
    offset = spec.get("offset", 0.0)
    for key, v in (("factor", factor), ("offset", offset)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            raise SignalMapError(f"{where}.{key}: must be a finite number, got {v!r}")
    if factor == 0:
        raise SignalMapError(f"{where}.factor: must be non-zero")
    derived = transform is not None and (transform.terminals or transform.mapping)
    choices = None if derived else _choices(name, spec.get("choices"), sig, where)
    return Binding(name, msg.name, msg.frame_id, sig.name, factor, offset, choices, bool(msg.is_extended_frame),
                   transform)


def _choices(name: str, choices, sig, where: str):
    names = {str(v) for v in (sig.choices or {}).values()}
    allowed = ENUM_SIGNALS.get(name)
    if choices is None:
        if allowed is not None and not names & set(allowed):
            raise SignalMapError(
                f"{where}: signal {sig.name} has no value named {'/'.join(allowed)}; "
                f"add choices = {{ <DBC value name> = \"<{'|'.join(allowed)}>\" }}")
        return None
    if allowed is None:
        raise SignalMapError(f"{where}.choices: only {', '.join(ENUM_SIGNALS)} takes choices "
                             f"(on a numeric signal the DBC's value names are error codes, dropped as sentinel)")
    if not isinstance(choices, dict):
        raise SignalMapError(f"{where}.choices: must map DBC value names to {'/'.join(allowed)}")
    if not sig.choices:
        raise SignalMapError(f"{where}.choices: signal {sig.name} has no value table in the DBC")
    for k, v in choices.items():
        if k not in names:
            raise SignalMapError(f"{where}.choices.{k}: not a value name of {sig.name} "
                                 f"(DBC names: {', '.join(sorted(names))})")
        if v not in allowed:
            raise SignalMapError(f"{where}.choices.{k}: {v!r} is not one of {', '.join(allowed)}")
    return dict(choices)


def _check_messages(db, bindings: dict, map_path: str) -> None:
    """Two mapped messages on one (id, extended) cannot be told apart on the bus."""
    seen: dict = {}
    for b in bindings.values():
        other = seen.setdefault(b.key, b.message)
        if other != b.message:
            kind = "extended" if b.extended else "standard"
            raise SignalMapError(f"{map_path}: messages {other} and {b.message} share the {kind} ID "
                                 f"0x{b.frame_id:X}; map only one of them")
