"""The component regulation, in one place (cited by the corpus generator, the classifier,
the bundle manifest and the README):

    A component manufactured before 1995, or in fair or poor condition, or made of
    plastic or iron, is out of compliance.

The compliance model does not learn this verdict. It reads the FACTS of a note: one head
per attribute says whether the note states a value that violates the rule, a value that
complies, or no value at all (`not_stated`). The verdict is computed here, in code a
regulator can read:

    non_compliant   if any attribute violates          (one bad fact is enough)
    compliant       only if all three attributes comply
    undetermined    otherwise (nothing violates, something is not stated)

A note that never states its year is therefore never called compliant. The thresholds
below are written into the bundle manifest (`regulation`) at training time; the agent
checks that the bundle was trained for this regulation (`check_manifest`).
"""

from __future__ import annotations

import datetime as _dt
import time

YEAR_CUTOFF = 1995                          # manufactured BEFORE this year violates
BAD_MATERIALS = ("plastic", "iron")
BAD_CONDITIONS = ("fair", "poor")
TEXT = "manufactured before 1995, or in fair or poor condition, or made of plastic or iron"

ATTRIBUTES = ("year", "material", "condition")
STATES = ("violates", "complies", "not_stated")      # the heads' class order
VIOLATES, COMPLIES, NOT_STATED = STATES
VERDICTS = ("compliant", "non_compliant", "undetermined")
_STATE_SET = frozenset(STATES)


def year_state(year: int | None) -> str:
    return NOT_STATED if year is None else (VIOLATES if year < YEAR_CUTOFF else COMPLIES)


def material_state(material: str | None) -> str:
    return NOT_STATED if material is None else (VIOLATES if material in BAD_MATERIALS else COMPLIES)


def condition_state(condition: str | None) -> str:
    return NOT_STATED if condition is None else (VIOLATES if condition in BAD_CONDITIONS else COMPLIES)


def states_of(year: int | None, material: str | None, condition: str | None) -> dict[str, str]:
    """Canonical facts of one component -> {attribute: state}."""
    return {"year": year_state(year), "material": material_state(material),
            "condition": condition_state(condition)}


def verdict(states: dict[str, str]) -> str:
    """{attribute: state} -> compliant / non_compliant / undetermined (the rule)."""
    vals = [states[a] for a in ATTRIBUTES]
    if not _STATE_SET.issuperset(vals):
        raise ValueError(f"unknown fact state {next(v for v in vals if v not in _STATE_SET)!r}")
    if VIOLATES in vals:
        return "non_compliant"
    if all(v == COMPLIES for v in vals):
        return "compliant"
    return "undetermined"


# A head's "complies" counts only when the model is at least this sure of it; below, the
# fact is treated as not stated (-> undetermined, never compliant). A doubtful "violates"
# stays violates: a non-compliance alert is checked at the next visit, a false "compliant"
# never is. Bundles carry their own value (manifest decision.min_p_complies).
MIN_P_COMPLIES = 0.8


# A year later than a few model years past today is no manufacture year (a job, claim or
# stock number that looks like one, "label code 2075-A"): the year fact is read only from
# plausible years. The floor of the clock is this code's year, so a head unit whose RTC
# came up in 1970 does not turn every year implausible.
YEARS_AHEAD = 4
_CODE_YEAR = 2026


_YEAR_READ = [0, 0.0]         # current_year(): the year, and until when (time.monotonic) it holds


def current_year() -> int:
    """The clock's year, read at most once a minute (date.today() costs ~1 us, a one-note
    classify ~70)."""
    now = time.monotonic()
    if now >= _YEAR_READ[1]:
        _YEAR_READ[0], _YEAR_READ[1] = _dt.date.today().year, now + 60.0
    return _YEAR_READ[0]


def plausible_year(year: int | None, this_year: int | None = None) -> bool:
    now = max(this_year or current_year(), _CODE_YEAR)
    return year is not None and 1900 <= year <= now + YEARS_AHEAD


def read_fact(attribute: str, probs, min_p_complies: float = MIN_P_COMPLIES, has_year: bool = True) -> str:
    """One head's class probabilities (in STATES order) -> the fact's state, by the two
    rules above the model: `complies` needs p >= min_p_complies, and a year can only be
    read from a note that holds a plausible year (a head that reads one from nowhere is
    ignored)."""
    if attribute == "year" and not has_year:
        return NOT_STATED
    pv, pc, pn = probs                        # (STATES order)
    # the most probable state, ties to the first
    if pc > pv:
        if pn > pc:
            return NOT_STATED
        return COMPLIES if float(pc) >= min_p_complies else NOT_STATED
    return NOT_STATED if pn > pv else VIOLATES


def combine(per_component: list[dict[str, str]]) -> dict[str, str]:
    """Facts of several components named in one note -> the note's facts: an attribute
    violates if it violates for any component, else is not stated if any component leaves
    it out, else complies. verdict(combine(x)) is non_compliant iff some component is,
    compliant iff every component is."""
    out = {}
    for a in ATTRIBUTES:
        vals = {c[a] for c in per_component}
        out[a] = VIOLATES if VIOLATES in vals else NOT_STATED if NOT_STATED in vals or not vals else COMPLIES
    return out


def compliant_field(v: str) -> bool | None:
    """The old boolean `compliant` field: True / False / None for undetermined."""
    return {"compliant": True, "non_compliant": False}.get(v)


def to_manifest() -> dict:
    return {"text": TEXT, "year_cutoff": YEAR_CUTOFF, "bad_materials": list(BAD_MATERIALS),
            "bad_conditions": list(BAD_CONDITIONS), "attributes": list(ATTRIBUTES), "states": list(STATES)}


def check_manifest(m: dict | None) -> None:
    """Raise ValueError if a bundle was trained for another regulation than this one."""
    if m is None:
        return                              # older single-output bundles carry no section
    mine = to_manifest()
    for k in ("year_cutoff", "bad_materials", "bad_conditions", "attributes", "states"):
        if m.get(k) != mine[k]:
            raise ValueError(f"bundle trained for another regulation ({k}={m.get(k)!r}, agent has {mine[k]!r})")
