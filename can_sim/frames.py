"""Canonical values -> CAN frames, through the agent's own DBC + signal map.

Nothing here knows an ID, a scaling or an enum value: everything comes from
`agent.signal_map.load_signal_map` (cantools database + canonical bindings), so the
simulator follows whatever DBC/map the agent is given.

Every encode also returns the *agent's view* of the frame: the canonical values a correct
decoder gets back (raw -> cantools raw_to_scaled -> binding factor/offset). The ground
truth is computed from exactly those quantised values.

Bad frames for the fault scenarios are built here too, one builder per agent drop reason:
`out_of_range` (a mapped signal's raw value beyond its DBC [min|max]), `bad_dlc` (a mapped
ID with a truncated payload), `undecodable` (a mapped ID as a remote frame: right ID and
DLC but no data to decode).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import can

from agent import signals as S
from agent.signal_map import Binding, SignalMap

# Order of the messages inside a frame set: the time first (the agent's clock must move
# before the samples it stamps), then who the battery is, the power mode, then the data.
SET_ORDER = (S.CURRENT_TIME, S.BATTERY_ID, S.RATED_CYCLES, S.NOMINAL_CAPACITY, S.INSTALL_DATE,
             S.SYSTEM_STATE, S.VOLTAGE, S.CURRENT, S.TEMPERATURE, S.SOC, S.THROUGHPUT,
             S.SPEED, S.ODOMETER)


@dataclass
class _Slot:
    binding: Binding
    signal: object                    # cantools Signal
    raw_min: int
    raw_max: int
    name_to_raw: dict[str, int] | None = None   # enum signals: canonical value -> raw
    sentinels: frozenset = frozenset()          # numeric signals: raw values the DBC names (error codes)


@dataclass
class MessagePlan:
    """One DBC message the simulator emits: its mapped slots and filler signals."""
    message: object                   # cantools Message
    frame_id: int
    is_extended: bool
    length: int
    is_fd: bool = False               # CAN FD (payloads up to 64 bytes)
    slots: list[_Slot] = field(default_factory=list)
    counters: list[tuple[str, int]] = field(default_factory=list)   # (signal, modulo) rolling counters
    fillers: dict[str, int] = field(default_factory=dict)           # other unmapped signals: constant raw
    oor: list[tuple[str, int]] = field(default_factory=list)        # (signal, raw) out-of-range candidates
    counter_value: int = 0

    @property
    def canonicals(self) -> list[str]:
        return [s.binding.canonical for s in self.slots]


def _raw_bounds(sig) -> tuple[int, int]:
    if sig.is_signed:
        return -(1 << (sig.length - 1)), (1 << (sig.length - 1)) - 1
    return 0, (1 << sig.length) - 1


class FrameEncoder:
    def __init__(self, smap: SignalMap):
        self.smap = smap
        self.plans: list[MessagePlan] = []
        self.plan_for: dict[str, MessagePlan] = {}          # canonical -> plan
        seen: dict[tuple, MessagePlan] = {}
        order = list(SET_ORDER) + [c for c in S.ALL if c not in SET_ORDER]
        for canonical in order:
            b = smap.bindings.get(canonical)
            if b is None:
                continue
            plan = seen.get(b.key)
            if plan is None:
                msg = smap.message_for(b)
                plan = MessagePlan(msg, msg.frame_id, bool(msg.is_extended_frame), msg.length,
                                   bool(msg.is_fd) or msg.length > 8)
                seen[b.key] = plan
                self.plans.append(plan)
            self.plan_for[canonical] = plan
        for plan in self.plans:
            key = (plan.frame_id, plan.is_extended)
            mapped = {b.signal for b in smap.by_key[key]}
            for b in smap.by_key[key]:
                sig = plan.message.get_signal_by_name(b.signal)
                lo, hi = _raw_bounds(sig)
                raw_min = max(lo, self._to_raw(sig, sig.minimum) if sig.minimum is not None else lo)
                raw_max = min(hi, self._to_raw(sig, sig.maximum) if sig.maximum is not None else hi)
                n2r = None
                if sig.choices and b.is_enum:     # enum: canonical value -> raw (via the map's name translation)
                    n2r = {}
                    for r, nm in sig.choices.items():
                        if b.choices is None:
                            n2r[str(nm)] = int(r)
                        elif str(nm) in b.choices:
                            n2r[b.choices[str(nm)]] = int(r)
                    n2r = {k: v for k, v in n2r.items() if k in S.SYSTEM_STATES}   # never a sentinel name
                plan.slots.append(_Slot(b, sig, raw_min, raw_max, n2r,
                                        frozenset(int(r) for r in (sig.choices or {})) if not b.is_enum else frozenset()))
                # Out-of-range candidates: numeric, no enum, raw field wider than the DBC range.
                if not b.is_enum:
                    sent = plan.slots[-1].sentinels
                    if hi > raw_max and hi not in sent:
                        plan.oor.append((sig.name, hi))
                    if lo < raw_min and lo not in sent:
                        plan.oor.append((sig.name, lo))
            for sig in plan.message.signals:
                if sig.name in mapped:
                    continue
                if "counter" in sig.name.lower():
                    plan.counters.append((sig.name, 1 << sig.length))
                else:
                    lo, hi = _raw_bounds(sig)
                    zero = 0 if sig.choices else self._to_raw(sig, 0.0)
                    if sig.minimum is not None and not sig.choices:
                        zero = max(zero, self._to_raw(sig, sig.minimum))
                    plan.fillers[sig.name] = min(max(zero, lo), hi)
        self.frame_ids = {p.frame_id for p in self.plans}
        self.known_ids = {m.frame_id for m in smap.db.messages}

    @staticmethod
    def _to_raw(sig, phys) -> int:
        return int(sig.conversion.numeric_scaled_to_raw(phys))

    def set_plans(self, canonicals) -> list[MessagePlan]:
        """Messages needed to carry these canonical signals, in frame-set order (deduplicated)."""
        want = set(canonicals)
        return [p for p in self.plans if want.intersection(p.canonicals)]

    # ---- good frames -------------------------------------------------------------------
    def encode(self, plan: MessagePlan, values: dict) -> tuple[can.Message, dict, dict]:
        """Encode one message from canonical values (missing ones: 0/first enum).
        Returns (message, agent view {canonical: value}, raw signal dict)."""
        raw: dict[str, int] = {}
        view: dict = {}
        for slot in plan.slots:
            b, sig = slot.binding, slot.signal
            v = values.get(b.canonical)
            if slot.name_to_raw is not None:
                r = slot.name_to_raw.get(v, next(iter(slot.name_to_raw.values())))
                r = int(r)
                name = str(sig.choices[r])
                view[b.canonical] = b.choices[name] if b.choices else name
            else:
                phys = ((v if v is not None else 0.0) - b.offset) / b.factor
                r = min(max(int(sig.conversion.numeric_scaled_to_raw(phys)), slot.raw_min), slot.raw_max)
                while r in slot.sentinels:       # a real value never encodes as an error code
                    r = r - 1 if r > slot.raw_min else r + 1
                view[b.canonical] = sig.conversion.raw_to_scaled(r, False) * b.factor + b.offset
            raw[sig.name] = r
        for name, mod in plan.counters:
            raw[name] = plan.counter_value % mod
        plan.counter_value += 1
        raw.update(plan.fillers)
        data = plan.message.encode(raw, scaling=False, strict=False)
        msg = can.Message(arbitration_id=plan.frame_id, is_extended_id=plan.is_extended, data=data, is_fd=plan.is_fd)
        return msg, view, raw

    # ---- bad frames (fault injection) --------------------------------------------------
    def out_of_range(self, plan: MessagePlan, raw: dict, rng) -> can.Message | None:
        if not plan.oor:
            return None
        name, bad = plan.oor[int(rng.integers(len(plan.oor)))]
        data = plan.message.encode({**raw, name: bad}, scaling=False, strict=False)
        return can.Message(arbitration_id=plan.frame_id, is_extended_id=plan.is_extended, data=data, is_fd=plan.is_fd)

    def bad_dlc(self, plan: MessagePlan, data: bytes, rng) -> can.Message:
        n = int(rng.integers(0, plan.length))          # strictly shorter than the DBC length
        return can.Message(arbitration_id=plan.frame_id, is_extended_id=plan.is_extended, data=data[:n],
                           is_fd=plan.is_fd)

    def undecodable(self, plan: MessagePlan) -> can.Message:
        return can.Message(arbitration_id=plan.frame_id, is_extended_id=plan.is_extended,
                           is_remote_frame=True, dlc=plan.length)
