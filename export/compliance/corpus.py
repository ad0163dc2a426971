"""Technician-note corpus generator, labelled by the regulation:

    non-compliant (1) if manufactured before 1995, OR condition fair/poor, OR material
    plastic/iron;  compliant (0) otherwise.

Every note states exactly one year, one material and one condition (so its label is never
ambiguous), in one of many STYLES (sentences in varied word order, terse field lists,
key-value, tables, abbreviations, two-digit years...), with noise that does not touch the
label: mixed case, one-edit typos on long words, part names from a 100+ catalogue,
mileage, part numbers, workshop remarks. Filler never contains a year-like number
(4 digits 1900-2099) nor a material/condition word.

Deterministic: same seed, same notes. `holdout_styles` / `holdout_years` let training
exclude styles and years entirely so the evaluation measures generalisation to both.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass

from agent import regulation as R
from export.compliance.parts import PARTS

YEAR_MIN, YEAR_MAX, CUTOFF = 1950, 2030, R.YEAR_CUTOFF

# canonical -> surface variants (all clearly that material)
MATERIALS = {
    "plastic": ["plastic", "ABS plastic", "PP plastic", "polypropylene plastic", "moulded plastic",
                "molded plastic", "reinforced plastic", "plastic (ABS)", "hard plastic"],
    "iron": ["iron", "cast iron", "cast-iron", "wrought iron", "ductile iron", "grey iron",
             "gray cast iron", "iron casting"],
    "steel": ["steel", "stainless steel", "stainless", "carbon steel", "forged steel",
              "galvanised steel", "galvanized steel", "mild steel", "high-strength steel", "sheet steel"],
    "carbon fiber": ["carbon fiber", "carbon fibre", "carbon-fibre", "carbon-fiber", "CF",
                     "carbon fibre composite", "carbonfiber", "woven carbon fiber"],
    "aluminium": ["aluminium", "aluminum", "alu", "cast aluminium", "aluminium alloy", "billet aluminum"],
}
BAD_MATERIALS = set(R.BAD_MATERIALS)

CONDITIONS = {
    "poor": ["poor"],
    "fair": ["fair"],
    "good": ["good", "very good"],
    "new": ["new", "brand new", "like new", "as new"],
    "excellent": ["excellent"],
}
BAD_CONDITIONS = set(R.BAD_CONDITIONS)

REMARKS = [
    "torque checked", "customer reports rattle", "replace at next service", "see photo",
    "no leaks found", "inspected on lift", "visual inspection only", "ok to refit",
    "bay 4", "tech MK", "logged in workshop system", "cleaned and refitted", "bolts re-torqued",
    "awaiting customer approval", "noted during annual inspection", "part removed for check",
    "warranty claim pending", "records updated", "checked by supervisor", "minor surface marks",
    "fitted to vehicle", "spare on shelf", "labelled and bagged", "measured within spec",
    "photographed for file", "seal replaced", "paint chipped", "rust spots on edges",
]
REMARKS_HOLDOUT = ["noise on cold start", "checked with borescope", "refitted with sealant",
                   "reported by driver", "documented for audit"]

NOTE_MIN_WORDS = 3


def label_of(year: int, material: str, condition: str) -> int:
    return int(year < CUTOFF or condition in BAD_CONDITIONS or material in BAD_MATERIALS)


def fact_fields(year, material, condition, states=None, year_value="same") -> dict:
    """The fact labels every record carries: per-attribute state (agent/regulation.py), the
    rule's verdict, the manufacture year the note states (None if it states none) and the
    old binary label (1 non-compliant, 0 compliant, None undetermined)."""
    st = states or R.states_of(year, material, condition)
    v = R.verdict(st)
    return {"states": st, "verdict": v, "year_value": year if year_value == "same" else year_value,
            "label": {"non_compliant": 1, "compliant": 0}.get(v)}


@dataclass
class Facts:
    part: str
    year: int
    material: str          # canonical
    mat: str               # surface
    condition: str         # canonical
    cond: str              # surface


# ---- noise ----------------------------------------------------------------------------

def _mileage(r: random.Random) -> str:
    n = r.randint(5000, 350000)
    unit = r.choice(["km", "km", "mi", "miles"])
    txt = f"{n:,}" if r.random() < 0.5 else str(max(n, 10000))
    return r.choice([f"at {txt} {unit}", f"odo {txt} {unit}", f"{txt}{unit}", f"mileage {txt}"])


def _part_number(r: random.Random) -> str:
    a = "".join(r.choice(string.ascii_uppercase) for _ in range(r.randint(1, 3)))
    b = r.randint(100, 999)
    c = r.randint(100, 999)
    return r.choice([f"PN {a}{b}-{c}", f"P/N {b}.{c}.{a}", f"#{a}-{b}{c}", f"OEM {b}-{c}{a}", f"ref {a}{b}"])


def _typo(word: str, r: random.Random) -> str:
    """One edit (delete, duplicate, swap, substitute) on a long alphabetic word."""
    if len(word) < 5 or not word.isalpha():
        return word
    i = r.randint(1, len(word) - 2)
    op = r.randrange(4)
    if op == 0:
        return word[:i] + word[i + 1:]
    if op == 1:
        return word[:i] + word[i] + word[i:]
    if op == 2:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + r.choice(string.ascii_lowercase) + word[i + 1:]


def _case(text: str, r: random.Random) -> str:
    x = r.random()
    if x < 0.55:
        return text
    if x < 0.75:
        return text.lower()
    if x < 0.85:
        return text.upper()
    if x < 0.95:
        return text[:1].upper() + text[1:]
    return " ".join(w.capitalize() for w in text.split(" "))


def _noisy(text: str, r: random.Random, typo_rate: float) -> str:
    words = text.split(" ")
    words = [_typo(w, r) if r.random() < typo_rate else w for w in words]
    return _case(" ".join(words), r)


# ---- styles ---------------------------------------------------------------------------
# Each style: f(facts, r, extra) -> text. `extra()` returns an optional filler clause.

def _yr(f: Facts, r: random.Random) -> str:
    """Year as written; two-digit and dated forms included."""
    x = r.random()
    if x < 0.75:
        return str(f.year)
    if x < 0.85:
        return f"{r.randint(1, 12):02d}/{f.year}"
    if x < 0.95:
        return f"{f.year}-{r.randint(1, 12):02d}"
    return f"'{f.year % 100:02d}" if YEAR_MIN <= f.year <= 2030 and not (30 < f.year % 100 < 50) else str(f.year)


def _made(r):
    return r.choice(["manufactured in", "made in", "built in", "produced in", "manufactured", "built",
                     "dating from", "from"])


def _cond_phrase(f: Facts, r):
    return r.choice([f"in {f.cond} condition", f"{f.cond} condition", f"condition {f.cond}",
                     f"in {f.cond} shape", f"condition is {f.cond}", f"{f.cond} state"])


def _mat_phrase(f: Facts, r):
    return r.choice([f"made of {f.mat}", f"{f.mat}", f"made from {f.mat}", f"material {f.mat}",
                     f"{f.mat} construction"])


def s_classic(f, r, extra):      # "Manufactured in 1985 made of steel in fair condition"
    return f"{_made(r)} {_yr(f, r)} made of {f.mat} {_cond_phrase(f, r)}{extra()}"


def s_condition_first(f, r, extra):   # "Good condition carbon fiber component manufactured in 2010"
    noun = r.choice(["component", "part", f.part, "unit", "assembly"])
    return f"{f.cond} condition {f.mat} {noun} {_made(r)} {_yr(f, r)}{extra()}"


def s_material_first(f, r, extra):    # "Steel component manufactured in 1995 in fair condition"
    noun = r.choice(["component", "part", f.part, "unit"])
    return f"{f.mat} {noun} {_made(r)} {_yr(f, r)} {_cond_phrase(f, r)}{extra()}"


def s_part_sentence(f, r, extra):
    made = r.choice(["manufactured in", "built in", "produced in", "made in"])
    return (f"The {f.part} was {made} {_yr(f, r)}, it is made of {f.mat} and is in "
            f"{f.cond} {r.choice(['condition', 'shape'])}.{extra()}")


def s_terse_slash(f, r, extra):       # "mat: iron / yr 1999 / cond good"
    fields = [f"mat: {f.mat}", f"yr {_yr(f, r)}", f"cond {f.cond}"]
    r.shuffle(fields)
    return " / ".join(fields) + extra()


def s_key_value(f, r, extra):
    k = r.choice([("material", "year", "condition"), ("Material", "Year", "Condition"),
                  ("matl", "mfg_year", "cond"), ("MATERIAL", "YEAR", "STATE")])
    sep, eq = r.choice([("; ", "="), (", ", ": "), (" ", "="), (" | ", ": ")])
    fields = [f"{k[0]}{eq}{f.mat}", f"{k[1]}{eq}{_yr(f, r)}", f"{k[2]}{eq}{f.cond}"]
    r.shuffle(fields)
    return f"{f.part}{sep}" * (r.random() < 0.5) + sep.join(fields) + extra()


def s_json_like(f, r, extra):
    d = {"part": f.part, "material": f.mat, "year": f.year, "condition": f.cond}
    keys = list(d)
    r.shuffle(keys)
    return json.dumps({k: d[k] for k in keys}) + extra()


def s_table(f, r, extra):
    cells = [f.part, str(f.year), f.mat, f.cond]
    return " | ".join(cells) + extra()


def s_abbrev(f, r, extra):
    return (f"{f.part} {r.choice(['mfd', 'mfg', 'manuf.', 'DOM'])} {_yr(f, r)}, "
            f"{r.choice(['matl', 'mat.', 'mtl'])} {f.mat}, {r.choice(['cond', 'cond.', 'cnd'])} {f.cond}{extra()}")


def s_remark(f, r, extra):
    bits = [f"{f.cond} shape.", f"{f.mat}.", f"DOM {_yr(f, r)}."]
    r.shuffle(bits)
    return f"{f.part} checked. " + " ".join(bits) + extra()


def s_model_year(f, r, extra):
    return f"MY{f.year} {f.part} ({f.mat}) - {f.cond}{extra()}"


def s_inspected(f, r, extra):
    fields = [f"condition {f.cond}", f"material {f.mat}", f"year of manufacture {_yr(f, r)}"]
    r.shuffle(fields)
    return f"Inspected {f.part} - " + ", ".join(fields) + extra()


def s_semicolons(f, r, extra):
    fields = [f.cond, f.mat, _yr(f, r), f.part]
    r.shuffle(fields)
    return "; ".join(fields) + extra()


def s_long_noisy(f, r, extra):
    return (f"{f.part} {_part_number(r)} {_mileage(r)}: made from {f.mat}, manufactured {_yr(f, r)}, "
            f"{f.cond} condition. {r.choice(REMARKS)}")


def s_this_dates(f, r, extra):        # held out of the shipped model's training
    return f"Made of {f.mat}, this {f.part} dates from {_yr(f, r)} and is in {f.cond} condition.{extra()}"


def s_construction(f, r, extra):      # held out
    return f"{_yr(f, r)} {f.part}, {f.mat} construction, {f.cond}{extra()}"


def s_bullets(f, r, extra):           # held out
    fields = [f"part: {f.part}", f"yr: {_yr(f, r)}", f"mat: {f.mat}", f"cond: {f.cond}"]
    r.shuffle(fields)
    return "- " + " - ".join(fields) + extra()


def s_reverse_sentence(f, r, extra):  # held out
    return f"Condition {f.cond}; the {f.mat} {f.part} left the factory in {_yr(f, r)}.{extra()}"


STYLES = {
    "classic": s_classic, "condition_first": s_condition_first, "material_first": s_material_first,
    "part_sentence": s_part_sentence, "terse_slash": s_terse_slash, "key_value": s_key_value,
    "json_like": s_json_like, "table": s_table, "abbrev": s_abbrev, "remark": s_remark,
    "model_year": s_model_year, "inspected": s_inspected, "semicolons": s_semicolons,
    "long_noisy": s_long_noisy, "this_dates": s_this_dates, "construction": s_construction,
    "bullets": s_bullets, "reverse_sentence": s_reverse_sentence,
}
# What the shipped bundle never sees in training (its held-out evaluation uses exactly these).
HOLDOUT_STYLES = ("this_dates", "construction", "bullets", "reverse_sentence")
HOLDOUT_YEARS = (1952, 1961, 1973, 1988, 1999, 2006, 2014, 2027)


class NoteGenerator:
    def __init__(self, seed: int = 0, styles=None, years=None, typo_rate: float = 0.04,
                 extra_rate: float = 0.35, remarks=None):
        self.r = random.Random(seed)
        self.styles = list(styles or STYLES)
        self.years = list(years or range(YEAR_MIN, YEAR_MAX + 1))
        self.typo_rate = typo_rate
        self.extra_rate = extra_rate
        self.remarks = list(remarks or REMARKS)
        self.n = 0

    def _extra(self) -> str:
        r = self.r
        if r.random() >= self.extra_rate:
            return ""
        kind = r.randrange(3)
        if kind == 0:
            return f". {r.choice(self.remarks)}"
        if kind == 1:
            return f", {_mileage(r)}"
        return f" ({_part_number(r)})"

    def facts(self, part=None, label=None) -> Facts:
        r = self.r
        while True:
            material = r.choice(list(MATERIALS))
            condition = r.choice(list(CONDITIONS))
            year = r.choice(self.years)
            if label is None or label_of(year, material, condition) == label:
                break
        return Facts(part or r.choice(PARTS), year, material, r.choice(MATERIALS[material]),
                     condition, r.choice(CONDITIONS[condition]))

    def note(self, style: str | None = None, facts: Facts | None = None) -> dict:
        r = self.r
        # Balance labels ~50/50: the raw rule makes ~80% of random notes non-compliant.
        f = facts or self.facts(label=int(r.random() < 0.5))
        style = style or r.choice(self.styles)
        text = STYLES[style](f, r, self._extra)
        text = _noisy(text, r, self.typo_rate)
        self.n += 1
        return {"id": f"n{self.n:07d}", "text": text, "style": style, "part": f.part, "year": f.year,
                "material": f.material, "condition": f.condition,
                **fact_fields(f.year, f.material, f.condition)}

    def notes(self, n: int) -> list[dict]:
        return [self.note() for _ in range(n)]

    def vin(self) -> str:
        chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
        return "".join(self.r.choice(chars) for _ in range(17))

    def spec(self, min_components: int = 3, max_components: int = 12) -> tuple[dict, list[dict]]:
        """One vehicle spec document (shared shape) and its per-component truth."""
        r = self.r
        parts = r.sample(PARTS, r.randint(min_components, max_components))
        comps, truth = [], []
        for p in parts:
            rec = self.note(facts=self.facts(part=p, label=int(r.random() < 0.35)))
            comps.append({"component": p, "note": rec["text"]})
            truth.append(rec)
        return {"vin": self.vin(), "components": comps}, truth


def split_train_holdout(records: list[dict], holdout_styles=HOLDOUT_STYLES, holdout_years=HOLDOUT_YEARS):
    """(records usable for training, records in a held-out style or year)."""
    hs, hy = set(holdout_styles), set(holdout_years)
    train = [x for x in records if x["style"] not in hs and x["year"] not in hy]
    held = [x for x in records if x["style"] in hs or x["year"] in hy]
    return train, held
