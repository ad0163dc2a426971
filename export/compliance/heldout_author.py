"""A second author, for evaluation only: field notes written with phrasings, narrative,
replacement/negation wording and typos that the training generators (corpus.py,
field_notes.py) never produce. Nothing here is imported by training; the held-out
metrics of the bundle are measured on these notes and on the hand-written file
export/compliance/data/handwritten.jsonl (labelled by hand, per attribute).

Labels come from agent/regulation.py exactly as for training (facts of the part as it is
now; several components: regulation.combine).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from agent import regulation as R
from agent.tokenizer import MAX_NOTE_CHARS
from export.compliance import corpus as C
from export.compliance.parts import PARTS

HANDWRITTEN = Path(__file__).with_name("data") / "handwritten.jsonl"

MATERIALS = {   # surface forms, some the training generators never write
    "plastic": ["plastic", "nylon plastic", "plastic moulding", "glass-filled plastic", "PA6 plastic"],
    "iron": ["iron", "cast iron", "nodular iron", "malleable iron", "grey cast iron"],
    "steel": ["steel", "stainless steel", "pressed steel", "chromoly steel", "spring steel", "boron steel"],
    "carbon fiber": ["carbon fiber", "carbon fibre", "carbon", "CFRP carbon fibre"],
    "aluminium": ["aluminium", "aluminum", "forged aluminium", "alloy aluminium", "alu casting"],
}
CONDITIONS = {"poor": ["poor", "pretty poor", "quite poor"], "fair": ["fair", "only fair", "fair-ish"],
              "good": ["good", "pretty good", "in good order"], "new": ["new", "factory new", "new again"],
              "excellent": ["excellent", "really excellent"]}

FILLER = [
    "Customer dropped the car off before eight and left the keys in the box",
    "Owner mentioned a squeak from the front end over rough ground",
    "Diagnosed with the wheels off and the car on axle stands",
    "Quick chat with the parts desk about lead times",
    "Pulled the wheel arch liner to see behind it",
    "Sprayed penetrating oil on the seized bolts and left it to soak",
    "Checked the recall database, nothing open for this chassis",
    "Apprentice assisted with the removal",
    "All findings discussed with the customer at collection",
    "Fluids topped up as a courtesy",
    "Rechecked after a short drive around the block",
    "Dash lights all out after the key cycle",
    "Workshop was busy so the job was split over two days",
    "Logged the hours against the warranty claim",
    "Photos uploaded to the customer portal",
]
DISTRACT = [lambda r, y: f"RO {y}", lambda r, y: f"claim no {y}", lambda r, y: f"mileage reading {y}",
            lambda r, y: f"label code {y}-A", lambda r, y: f"stock {y}"]


def _year(y: int, r: random.Random) -> str:
    t = r.choice([str(y), str(y), f"{r.randint(1, 28)}/{r.randint(1, 12)}/{y}", f"late {y}", f"early {y}",
                  f"week {r.randint(1, 52)} of {y}", f"{y}"])
    return r.choice([f"fabricated {t}", f"production year {t}", f"stamped {t}", f"made {t}", f"dates to {t}",
                     f"cast in {t}", f"manufactured circa {t}", f"build date {t}", f"came off the line in {t}"])


def _mat(m: str, r: random.Random) -> str:
    return r.choice([f"composed of {m}", f"constructed from {m}", f"body is {m}", f"{m} housing",
                     f"the material is {m}", f"{m} part", f"{m} casting" if "iron" in m or "alu" in m else f"{m}"])


def _cond(c: str, r: random.Random) -> str:
    return r.choice([f"rated {c}", f"graded {c}", f"looks {c}", f"state: {c}", f"overall condition {c}",
                     f"{c} overall", f"I'd call it {c}"])


def _typo(text: str, r: random.Random) -> str:
    """Author 2's typos: a doubled space, a dropped vowel, a keyboard-neighbour slip."""
    near = {"a": "s", "e": "r", "i": "o", "o": "p", "n": "m", "t": "y", "r": "t", "s": "d", "l": "k"}
    ws = text.split(" ")
    for k, w in enumerate(ws):
        if len(w) >= 6 and w.isalpha() and r.random() < 0.05:
            i = r.randint(1, len(w) - 2)
            if w[i] in near and r.random() < 0.5:
                ws[k] = w[:i] + near[w[i]] + w[i + 1:]
            elif w[i] in "aeiou":
                ws[k] = w[:i] + w[i + 1:]
    return " ".join(ws)


class AuthorNoteGenerator:
    def __init__(self, seed: int = 0):
        self.r = random.Random(seed)
        self.n = 0

    def _component(self, part: str, missing: set, lean: bool, phen: list):
        r = self.r
        ok_year = lambda: r.randint(R.YEAR_CUTOFF, C.YEAR_MAX)  # noqa: E731
        year = None if "year" in missing else (ok_year() if lean and r.random() < 0.85 else r.randint(C.YEAR_MIN, C.YEAR_MAX))
        pick = lambda opts, bad: r.choice([o for o in opts if o not in bad] if lean and r.random() < 0.85 else list(opts))  # noqa: E731
        material = None if "material" in missing else pick(MATERIALS, R.BAD_MATERIALS)
        condition = None if "condition" in missing else pick(CONDITIONS, R.BAD_CONDITIONS)
        cl = []
        if year is not None:
            cl.append(_year(year, r))
        if material is not None:
            m = r.choice(MATERIALS[material])
            if r.random() < 0.25:
                old = r.choice([x for x in MATERIALS if x != material])
                om = r.choice(MATERIALS[old])
                k = r.randrange(4)
                cl.append([f"changed out the {om} one for a {m} one", f"now {m} after the swap from {om}",
                           f"{om} -> {m}", f"isn't {om}, it's {m}"][k])
                phen.append("negation" if k == 3 else "replacement")
            else:
                cl.append(_mat(m, r))
        if condition is not None:
            cl.append(_cond(r.choice(CONDITIONS[condition]), r))
        if r.random() < 0.2:
            cl.insert(r.randint(0, len(cl)), r.choice(DISTRACT)(r, r.randint(1900, 2099)))
            phen.append("distractor")
        r.shuffle(cl)
        head = r.choice([f"Re {part} - ", f"{part.upper()}: ", f"Looked at the {part}, ", f"[{part}] "])
        return head + r.choice([", ", " / ", "; "]).join(cl), R.states_of(year, material, condition), year

    def _note(self, lean: bool) -> dict:
        r = self.r
        phen: list = []
        n = 1 if r.random() < 0.8 else 2
        texts, states, years = [], [], []
        for p in r.sample(PARTS, n):
            missing = set(r.sample(R.ATTRIBUTES, r.choice([1, 1, 2]))) if r.random() < 0.4 else set()
            if missing:
                phen.append("missing")
            t, s, y = self._component(p, missing, lean, phen)
            texts.append(t)
            states.append(s)
            years.append(y)
        if n > 1:
            phen.append("multi")
        st = R.combine(states) if n > 1 else states[0]
        yv = (next(y for y, s in zip(years, states) if s["year"] == R.VIOLATES) if st["year"] == R.VIOLATES
              else next((y for y in years if y is not None), None))
        body = " Also ".join(texts)
        if r.random() < 0.5:
            story = ". ".join(r.sample(FILLER, r.choice([2, 4, 6, 9])))
            body = (story + ". " + body) if r.random() < 0.7 else (body + ". " + story)
            phen.append("narrative")
        text = _typo(body, r)[:MAX_NOTE_CHARS]
        if r.random() < 0.3:
            text = text.lower()
        return {"id": "", "text": text, "style": "author2", "phenomena": sorted(set(phen)), "components": n,
                **C.fact_fields(None, None, None, states=st, year_value=yv), "year": yv}

    def note(self) -> dict:
        target = self.r.choice(R.VERDICTS)
        for _ in range(50):
            rec = self._note(target != "non_compliant")
            if rec["verdict"] == target:
                break
        self.n += 1
        rec["id"] = f"a{self.n:07d}"
        return rec

    def notes(self, n: int) -> list[dict]:
        return [self.note() for _ in range(n)]


def load_handwritten(path=HANDWRITTEN) -> list[dict]:
    """The hand-written notes: {"text", "year": int|null, "material": canonical|null,
    "condition": canonical|null} per line (several components: "components": [...]) ->
    records with states/verdict like the generators'."""
    out = []
    for k, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        d = json.loads(line)
        comps = d.get("components") or [d]
        for c in comps:                      # short keys y/m/c keep the file readable
            for short, long in (("y", "year"), ("m", "material"), ("c", "condition")):
                if short in c:
                    c[long] = c[short]
        states = [R.states_of(c.get("year"), c.get("material"), c.get("condition")) for c in comps]
        st = R.combine(states) if len(states) > 1 else states[0]
        years = [c.get("year") for c in comps]
        yv = (next(y for y, s in zip(years, states) if s["year"] == R.VIOLATES) if st["year"] == R.VIOLATES
              else next((y for y in years if y is not None), None))
        out.append({"id": f"h{k:04d}", "text": d["text"], "style": "handwritten",
                    "phenomena": sorted(set(d.get("tags", [])) | {"handwritten"}),
                    **C.fact_fields(None, None, None, states=st, year_value=yv), "year": yv})
    return out

