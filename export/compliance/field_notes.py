"""Field-style notes, as technicians really write them (the training author): facts that may
be missing, buried in workshop narrative, replaced or negated, written as dates or words,
next to year-like part/job numbers, and several components in one note.

Labels are per attribute (agent/regulation.py): a note's year/material/condition is
`violates`, `complies` or `not_stated`, for the part AS IT IS NOW (a replaced material is
the new one; "aluminium, not plastic" is aluminium). Several components: regulation.combine.
`year_value` is the manufacture year that decides the year fact (the first violating
component's year, else the first stated one; None if no year is stated).

Everything here is the TRAINING author's vocabulary; export/compliance/heldout_author.py
writes with other words, fillers and typos so the held-out evaluation measures what the
model never saw. Deterministic per seed.
"""

from __future__ import annotations

import random
import re

from agent import regulation as R
from agent.tokenizer import MAX_NOTE_CHARS
from export.compliance import corpus as C
from export.compliance.parts import PARTS

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
_UNITS = "one two three four five six seven eight nine".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()

# Narrative with no fact in it: no year-like number, no material or condition word.
FILLER = [
    "Vehicle came in on a flatbed after the customer heard a knocking noise on the motorway",
    "Customer says the noise gets worse over speed bumps and when turning left",
    "Road tested for about ten minutes with the service manager",
    "Put the car on the lift and removed the undertray to get access",
    "Had to wait for the parts department to confirm availability",
    "Cleaned the area with brake cleaner before taking a closer look",
    "Checked the service history in the booklet, last visit was a routine oil change",
    "Took photos for the file and sent them to the customer by email",
    "Torqued all fasteners to spec and rechecked after the road test",
    "No fault codes stored in the engine control unit",
    "Customer was advised and agreed to the quote over the phone",
    "Job carried over from yesterday because the bay was needed for an MOT",
    "Second opinion from the shift lead before signing off",
    "Removed two clips which were broken and fitted replacements from stock",
    "The vehicle was washed before the inspection so the surfaces were easy to see",
    "Noted a slight weep from the rocker gasket, not related to this job",
    "Tyres were at the legal limit on the rear axle so we mentioned it to the customer",
    "Battery tested and charging voltage is within range",
    "Will need another look at the next scheduled service",
    "Parked outside overnight and rechecked first thing in the morning",
    "Used the borescope to look behind the shield",
    "All work recorded on the job card and signed by the technician",
    "Courtesy car given to the customer for the day",
    "Spoke to the customer about the warranty terms",
    "Lifted the car again to double check the mounting points",
    "The part number on the label was hard to read because of road dirt",
    "Greased the joints and refitted the covers",
    "Checked for play by hand and with a pry bar",
    "Diagnosis took longer than the booked hour",
    "Nothing else found during the visual check of the engine bay",
    "Car arrived with the warning light on and a note from the driver on the seat",
    "Ran the engine up to temperature and listened with a stethoscope",
    "Wiring loom looked tidy with no signs of rodent damage",
    "Had to order a special tool from the dealer network",
    "Driver wanted it back by the end of the day so we prioritised it",
    "Jacked up the corner and spun the wheel by hand to listen",
    "Sent a message to the fleet manager with the findings",
    "Checked the technical bulletins on the manufacturer portal",
    "The area around it was covered in road salt and grime",
    "Found a loose heat shield on the way in and secured it",
    "Followed the repair manual procedure step by step",
    "Nothing unusual on the live data while idling",
    "Left a tag on the steering wheel for the valet",
    "Pressure tested the system and it held for twenty minutes",
    "Second technician verified the work before release",
    "Water ingress marks inside the boot, customer informed",
    "Removed the trim panels carefully to avoid breaking the clips",
    "Re-routed a chafing hose while we were in there",
    "Checked the underbody for damage after the reported pothole strike",
    "Scan tool update was needed before the reset",
]
# Narrative sentences that carry a year-like number which is NOT the manufacture year (a
# service date, a booking, a previous visit): real notes have them, the year head must not read them.
DATED_FILLER = [
    lambda r, y: f"Booked in on {r.randint(1, 28):02d}.{r.randint(1, 12):02d}.{y}",
    lambda r, y: f"Last service was done in {y} according to the booklet",
    lambda r, y: f"Previous visit {MONTHS[r.randrange(12)]} {y} for an oil leak",
    lambda r, y: f"Invoice of {r.randint(1, 28)}/{r.randint(1, 12)}/{y} sent to the fleet account",
    lambda r, y: f"Inspection due again in {y}",
    lambda r, y: f"Warranty on the previous repair ran out in {y}",
    lambda r, y: f"Customer has had the car since {y}",
]
DISTRACTORS = [  # year-like numbers that are NOT the manufacture year
    lambda r, y: f"job {y}-{r.randint(10, 9999):04d}", lambda r, y: f"PN {y}-{r.randint(10, 99)}",
    lambda r, y: f"odometer {y} km", lambda r, y: f"invoice {y}", lambda r, y: f"ticket #{y}",
    lambda r, y: f"ref {y}/{r.randint(1, 99)}", lambda r, y: f"bay {r.randint(1, 9)} slot {y}",
    lambda r, y: f"work order {y}", lambda r, y: f"{y} miles on the clock",
    lambda r, y: f"batch {y}", lambda r, y: f"lot {y}-{r.randint(1, 99)}", lambda r, y: f"PO {y}",
    lambda r, y: f"case {y}", lambda r, y: f"docket {y}", lambda r, y: f"booking ref {y}",
    lambda r, y: f"serial {y}{r.randint(100, 999)}", lambda r, y: f"S/N {y}", lambda r, y: f"warranty no {y}",
    lambda r, y: f"quote {y}", lambda r, y: f"receipt {y}", lambda r, y: f"tag {y}", lambda r, y: f"cert {y}",
    lambda r, y: f"WO {y}", lambda r, y: f"job card {y}", lambda r, y: f"part no {y}-{r.randint(1, 9)}",
    lambda r, y: f"SKU {y}", lambda r, y: f"bin {y}", lambda r, y: f"campaign {y}", lambda r, y: f"TSB {y}",
    lambda r, y: f"report no {y}", lambda r, y: f"torque {y} Nm", lambda r, y: f"{y} rpm at idle",
    lambda r, y: f"{y} hours on the meter", lambda r, y: f"{y} km since last service",
    lambda r, y: f"mileage {y}", lambda r, y: f"odo {y}",
]
# the words that mark a number as a reference or a measurement (protected from word dropout
# in training, see train.KEEP_WORDS)
DISTRACTOR_WORDS = ("job", "pn", "odometer", "invoice", "ticket", "ref", "bay", "slot", "work", "order", "miles",
                    "km", "mi", "mileage", "clock", "on", "batch", "lot", "po", "case", "docket", "booking", "serial",
                    "s", "n", "warranty", "quote", "receipt", "tag", "cert", "wo", "card", "part", "sku", "bin",
                    "campaign", "tsb", "report", "torque", "nm", "rpm", "idle", "hours", "meter", "since", "service",
                    "odo",
                    # what marks a date in the narrative as a visit, not the manufacture (DATED_FILLER)
                    "booked", "last", "previous", "visit", "due", "inspection", "warranty", "had", "expired")


def year_words(y: int, r: random.Random) -> str:
    if y >= 2000:
        rest = y - 2000
        if rest < 10:
            return "two thousand and " + _UNITS[rest - 1] if rest else "two thousand"
        head = "twenty "
    else:
        rest, head = y - 1900, "nineteen "
    if rest < 10:
        return str(y)
    if rest < 20:
        return head + _TEENS[rest - 10]
    t, u = divmod(rest, 10)
    return head + _TENS[t - 2] + (("-" if u and r.random() < 0.5 else " ") + _UNITS[u - 1] if u else "")


def year_text(y: int, r: random.Random) -> str:
    x = r.random()
    if x < 0.45:
        return str(y)
    if x < 0.52:
        return f"{r.choice(MONTHS)} {y}"
    if x < 0.58:
        return f"{r.randint(1, 12):02d}.{y}"
    if x < 0.64:
        return f"Q{r.randint(1, 4)} {y}"
    if x < 0.70:
        return f"{y}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
    if x < 0.76:
        return f"{r.randint(1, 12):02d}/{y}"
    if x < 0.82 and not (30 < y % 100 < 50):
        return f"'{y % 100:02d}"
    if x < 0.92 and y % 100 >= 10:
        return year_words(y, r)
    return str(y)


def year_phrase(y: int, r: random.Random) -> str:
    t = year_text(y, r)
    return r.choice([f"manufactured in {t}", f"built {t}", f"made in {t}", f"dated {t}", f"DOM {t}",
                     f"yr {t}", f"year {t}", f"from {t}", f"mfd {t}", f"produced {t}",
                     f"manufacture date {t}", f"built in {t}", f"date of manufacture {t}",
                     f"{t} build", f"year of manufacture {t}",
                     f"assembled in {t}", f"rolled out {t}", f"made around {t}", f"manufacture year {t}",
                     f"mfg date {t}", f"build year {t}", f"date code {t}", f"produced during {t}",
                     f"from around {t}", f"approx. {t}", f"{t}-built", f"{t} vintage", f"a {t} unit",
                     f"({t})", f"c. {t}", f"dating to {t}", f"made back in {t}", t, t, f"{t} manufacture",
                     f"manufactured during {t}", f"origin {t}", f"the date on it is {t}", f"new in {t}"])


def decade_phrase(y: int, r: random.Random) -> str:
    d = y - y % 10
    return r.choice([f"from the {d}s", f"built in the {d}s", f"a {d}s part", f"dates from the {d}s"])


# A fact written down as unknown is not stated (never a guess).
UNSTATED = {
    "year": ["year unknown", "no date visible", "date not legible", "year: ?", "no year on it", "year n/a",
             "date stamp worn off", "manufacture date unknown", "couldn't find a date", "age unknown"],
    "material": ["material unknown", "material: ?", "material n/a", "material not confirmed",
                 "couldn't tell the material", "material to be checked", "unsure of the material"],
    "condition": ["condition not assessed", "condition: ?", "condition n/a", "condition to be confirmed",
                  "did not check the condition", "condition unknown", "not graded yet"],
}


def mat_phrase(m: str, r: random.Random) -> str:
    return r.choice([f"made of {m}", f"{m}", f"material {m}", f"{m} construction", f"mat: {m}",
                     f"made from {m}", f"{m} body", f"matl {m}", f"it is {m}", f"in {m}", f"{m} type",
                     f"all {m}", f"a {m} one", f"{m} version", f"material: {m}", f"{m} item", m])


def cond_phrase(c: str, r: random.Random) -> str:
    return r.choice([f"in {c} condition", f"condition {c}", f"{c} shape", f"cond {c}", f"{c} condition",
                     f"condition is {c}", f"overall {c}", f"{c} state", f"condition: {c}", f"{c}",
                     f"it is in {c} nick", f"seems {c} to me", f"assessed as {c}", f"found {c}",
                     f"{c} on inspection", f"cond. {c}", f"checked {c}", f"in {c} order"])


_NUMBER_WORDS = set(_UNITS) | set(_TEENS) | set(_TENS) | {"thousand", "hundred"}
_WORD_RE = re.compile(r"[^\W\d_]+")
_PROTECTED: frozenset | None = None
# Narrative words that can fall anywhere in a note without changing a fact (no negation,
# replacement, time or number words): sprinkled between the words of fact clauses, so a
# word the model associates with narrative ("this", "left", "the") never cancels a fact.
NARRATIVE_WORDS = sorted({w for line in FILLER for w in line.lower().replace(",", "").split()}
                         - _NUMBER_WORDS - {"not", "no", "was", "were", "now", "replacements", "before", "after",
                                            "original", "old", "new", "last", "yesterday", "next", "is", "it",
                                            "and", "but", "by", "with", "for", "one", "two", "ten", "morning",
                                            # distractor contexts (DISTRACTORS): "job 2019-0042", "bay 4 slot 1985"
                                            "job", "bay", "slot", "work", "order", "ref", "invoice", "ticket",
                                            "odometer", "miles", "km", "clock", "on", "mileage", "label"})


# Pseudo-words: syllables that spell no word of this generator. Another author's narrative
# and labels are words the model never saw (<unk>, or one edit from some narrative word);
# training on made-up words teaches that an unknown word around the facts is no fact, so
# 300 words of someone else's story do not wash out the facts after it. A pseudo-word is
# never one edit from a fact, cue, negation or number word (the tokenizer's fuzzy lookup
# would read it as that word).
_ONSETS = "b bl br d dr f fl g gl gr k kl kr m n p pl pr s sk sl sp t tr v w z".split()
_NUCLEI = "a e i o u ai ea ou oo".split()
_CODAS = ["", "", "", "", "n", "m", "k", "r", "t", "sh", "rt", "x", "nd", "st", "ck"]
_CUE_WORDS = ("manufactured manufacture made built build dated date dom yr year years from mfd mfg produced "
              "assembled rolled out around code during approx vintage unit dating back origin condition cond "
              "material mat matl shape state overall nick seems assessed found inspection checked order "
              "construction body type version item all it is in of the and").split()


def _fuzzy_keys(w: str) -> set[str]:
    return {w} | ({w[:i] + w[i + 1:] for i in range(len(w))} if len(w) >= 4 else set())


def _protected_keys() -> frozenset:
    from string import Formatter
    texts = [f for forms in (*C.MATERIALS.values(), *C.CONDITIONS.values()) for f in forms]
    texts += [lit for t in REPLACED + NEGATED for lit, *_ in Formatter().parse(t)]
    texts += [u for v in UNSTATED.values() for u in v] + MONTHS + list(DISTRACTOR_WORDS) + _CUE_WORDS
    ws = {w for t in texts for w in _WORD_RE.findall(t.lower())} | _NUMBER_WORDS
    return frozenset(k for w in ws for k in _fuzzy_keys(w))


def pseudo_word(r: random.Random) -> str:
    """A made-up word (1-3 syllables), or a 2-3 letter consonant label ("KZ", "TRV")."""
    global _PROTECTED
    if _PROTECTED is None:
        _PROTECTED = _protected_keys()
    while True:
        if r.random() < 0.15:
            w = "".join(r.choice("bcdfghjklmnpqrstvwxz") for _ in range(r.choice([2, 3])))
        else:
            w = "".join(r.choice(_ONSETS) + r.choice(_NUCLEI) + r.choice(_CODAS) for _ in range(r.choice([1, 2, 2, 2, 3])))
        if not _fuzzy_keys(w) & _PROTECTED:
            return w


def salad(r: random.Random, n: int | None = None) -> str:
    """One narrative 'sentence' of narrative words and pseudo-words: no fact in it."""
    ws = [pseudo_word(r) if r.random() < 0.45 else r.choice(NARRATIVE_WORDS) for _ in range(n or r.randint(4, 14))]
    return ws[0].capitalize() + (" " + " ".join(ws[1:]) if len(ws) > 1 else "")


def qualified(fact: str, r: random.Random) -> str:
    """A fact word with words never seen around it ("<w> steel", "steel <w>", "<w> good
    <w>"): qualifiers another author writes ("chromoly steel", "good again") keep the fact."""
    w = pseudo_word(r)
    return r.choice([f"{w} {fact}", f"{fact} {w}", f"{w} {fact} {pseudo_word(r)}"])


def sprinkle(text: str, r: random.Random, k: int | None = None, made_up: bool = True) -> str:
    """Insert 1-3 narrative (or, with `made_up`, made-up) words at random word boundaries
    (never inside a year in words)."""
    ws = text.split(" ")
    for _ in range(k or r.choice([1, 1, 2, 3])):
        i = r.randint(0, len(ws))
        left = ws[i - 1].lower().strip(",.;()") if i else ""
        right = ws[i].lower().strip(",.;()") if i < len(ws) else ""
        if left in _NUMBER_WORDS or right in _NUMBER_WORDS:
            continue
        ws.insert(i, pseudo_word(r) if made_up and r.random() < 0.3 else r.choice(NARRATIVE_WORDS))
    return " ".join(ws)


def _noisy(text: str, r: random.Random, typo_rate: float) -> str:
    """corpus._noisy, but a year written in words keeps its spelling (a typo there would
    make the stated year unreadable and the label wrong)."""
    ws = text.split(" ")
    ws = [C._typo(w, r) if r.random() < typo_rate and w.lower().strip(",.;-()") not in _NUMBER_WORDS
          and "-" not in w else w for w in ws]
    return C._case(" ".join(ws), r)


# How a changed material is written ({om} the old one, {m} the part as it is now).
REPLACED = ["original {om} {part} replaced with a {m} one", "swapped the {om} one for {m}", "{m} (was {om})",
            "{om} cover replaced by {m}", "{om} removed, {m} fitted", "{m} fitted in place of the {om}",
            "{m} instead of {om}", "upgraded from {om} to {m}", "changed from {om} to {m}", "{om} → {m}",
            "{om} => {m}", "was {om}, now {m}", "{m} now (previously {om})", "{m} replaces the {om}",
            "the {om} one was swapped out for {m}", "{om} part gone, {m} part in", "{om} to {m}",
            "replaced {om} with {m}", "fitted a {m} one, the {om} one is scrap", "{m} (the {om} one failed)",
            "old {om}, new {m}", "converted to {m} from {om}", "{m} (previously {om})", "{m} (formerly {om})"]
NEGATED = ["{m}, not {om} as the old record said", "not {om} but {m}", "{m}, never {om}", "no longer {om}, {m}",
           "listed as {om} but actually {m}", "{om}? no, {m}", "not {om}, {m}", "wrongly recorded as {om}; it is {m}",
           "doesn't look like {om}, it is {m}", "{m} (not {om})", "is not {om}, is {m}",
           "the system says {om}, it is {m}", "{m} rather than {om}"]


class FieldNoteGenerator:
    """notes(n) -> records like corpus.NoteGenerator's, with `phenomena` naming what each shows."""

    def __init__(self, seed: int = 0, years=None, typo_rate: float = 0.03, filler=None,
                 year_phrase=year_phrase, mat_phrase=mat_phrase, cond_phrase=cond_phrase, salad: bool = True):
        self.r = random.Random(seed)
        self.years = list(years or range(C.YEAR_MIN, C.YEAR_MAX + 1))
        self.typo_rate = typo_rate
        self.filler = list(filler or FILLER)
        self.yp, self.mp, self.cp = year_phrase, mat_phrase, cond_phrase
        self.salad = salad                          # made-up words in narrative and labels
        self.n = 0

    # -- one component's facts ----------------------------------------------------------
    def _pick(self, options, bad, lean: bool):
        good = [o for o in options if o not in bad]
        return self.r.choice(good if lean and self.r.random() < 0.85 else list(options))

    def _component(self, part: str, missing: set, phen: list, lean: bool = False) -> tuple[str, dict, int | None]:
        """-> (text, states, year stated or None). `lean`: prefer complying values."""
        r = self.r
        year = None if "year" in missing else (
            r.choice([y for y in self.years if y >= R.YEAR_CUTOFF]) if lean and r.random() < 0.85 else r.choice(self.years))
        material = None if "material" in missing else self._pick(C.MATERIALS, R.BAD_MATERIALS, lean)
        condition = None if "condition" in missing else self._pick(C.CONDITIONS, R.BAD_CONDITIONS, lean)
        clauses = []
        plain_mat = year_plain = None
        if year is not None:
            if r.random() < 0.05 and (year // 10 * 10 + 9 < R.YEAR_CUTOFF or year // 10 * 10 >= R.YEAR_CUTOFF):
                clauses.append(decade_phrase(year, r))
                year = year - year % 10
                phen.append("decade")
            elif r.random() < 0.15:               # year replaced/corrected
                old = r.choice(self.years)
                clauses.append(r.choice([
                    f"new unit {self.yp(year, r)} fitted in place of one from {year_text(old, r)}",
                    f"{self.yp(year, r)}, not {year_text(old, r)}",
                    f"the {year_text(old, r)} one was removed, this one is {self.yp(year, r)}",
                    f"record shows {year_text(old, r)} but the part is {self.yp(year, r)}",
                    f"{year_text(old, r)} → {year_text(year, r)} after the swap",
                    f"replacement unit {self.yp(year, r)}, the original was from {year_text(old, r)}",
                    f"{self.yp(year, r)} (record said {year_text(old, r)})",
                    f"not {year_text(old, r)} as the old record said, {self.yp(year, r)}",
                    f"original from {year_text(old, r)} swapped for one {self.yp(year, r)}"]))
                phen.append("year_replaced")
            elif self.salad and r.random() < 0.08:
                # a manufacture year behind a verb phrase never seen ("cast in", "left the works
                # in"): "<words> in/during <year>" with nothing marking a visit or a reference is
                # the manufacture year (a label right before the number is not: see below)
                w1, w2 = pseudo_word(r), pseudo_word(r)
                clauses.append(r.choice([f"{w1} in", f"{w1} {w2} in", f"{w1} the {w2} in", f"was {w1} in",
                                         f"{w1} during", f"{w1} {w2} during"]) + " " + year_text(year, r))
                phen.append("unknown_cue")
            elif self.salad and r.random() < 0.06:
                # a known cue, then words never seen before the year ("built late 2011",
                # "made week <n> of 2013"): still the manufacture year
                cue = r.choice(["built", "made", "manufactured", "dated", "from", "year", "mfd", "produced", "built in"])
                w = pseudo_word(r)
                clauses.append(r.choice([f"{cue} {w} {year_text(year, r)}",
                                         f"{cue} {w} {r.randint(1, 52)} of {year_text(year, r)}"]))
                phen.append("unknown_cue")
            else:
                year_plain = self.yp(year, r)
                clauses.append(year_plain)
        if material is not None:
            mat = r.choice(C.MATERIALS[material])
            if self.salad and r.random() < 0.15:
                mat = qualified(mat, r)
            if r.random() < 0.25:
                old = r.choice([m for m in C.MATERIALS if m != material])
                om = r.choice(C.MATERIALS[old])
                forms = REPLACED + NEGATED
                kind = r.randrange(len(forms))
                txt = forms[kind].format(om=om, m=mat, part=part)
                if self.salad and " one" in txt and r.random() < 0.3:     # "the iron one" / "the iron flywheel"
                    txt = txt.replace(" one", " " + part, 1)
                clauses.append(txt)
                phen.append("replacement" if kind < len(REPLACED) else "negation")
            else:
                plain_mat = self.mp(mat, r)
                clauses.append(plain_mat)
        if condition is not None:
            cond = r.choice(C.CONDITIONS[condition])
            if r.random() < 0.15:
                old = r.choice([c for c in C.CONDITIONS if c != condition])
                clauses.append(r.choice([f"{self.cp(cond, r)} (was {old})", f"was {old}, now {cond}",
                                         f"{self.cp(cond, r)}, not {old}", f"{old} before repair, now {cond}",
                                         f"{old} to {cond} after the repair", f"{old} → {cond}",
                                         f"upgraded from {old} to {cond}", f"no longer {old}, {cond} now",
                                         f"{cond} now (previously {old})", f"listed as {old} but it is {cond}",
                                         f"{cond} these days, not {old}", f"improved from {old} to {cond}"]))
                phen.append("condition_changed")
            else:
                clauses.append(self.cp(qualified(cond, r) if self.salad and r.random() < 0.15 else cond, r))
        for a in sorted(missing):
            if r.random() < 0.3:                    # the unknown written down as unknown
                clauses.append(r.choice(UNSTATED[a]))
        r.shuffle(clauses)
        adjective = None
        if plain_mat is not None and r.random() < 0.2:   # "the steel bracket ...": material before the part
            clauses.remove(plain_mat)
            adjective = r.choice([f"the {mat} {part} ", f"{mat} {part}: ", f"a {mat} {part}, ", f"{mat} {part} "])
        if r.random() < 0.2:
            d = r.choice(DISTRACTORS)(r, r.randint(1900, 2099))
            clauses.insert(r.randint(0, len(clauses)), d)
            phen.append("distractor")
        elif self.salad and r.random() < 0.08:
            # a year-like number right behind a label never seen is a reference, not the
            # manufacture year (the safe reading: a note with only that is "year not stated");
            # next to a stated manufacture year, the year with a manufacture cue counts
            y = r.choice([x for x in range(1900, 2100) if x != year])
            label = pseudo_word(r)
            clauses.insert(r.randint(0, len(clauses)), f"{label.upper() if len(label) <= 3 else label} {y}")
            phen.append("distractor")
        sep = r.choice([", ", "; ", ". ", " - ", " ", ", ", " and "])
        head = r.choice([f"{part}: ", f"{part} ", f"The {part}, ", f"{part.capitalize()} checked. ",
                         f"the {part} is ", f"{part} which is ", f"{part} - ", f"{part}\n"]
                        + [""] * bool(clauses)) if adjective is None else adjective
        text = head + sep.join(clauses)
        if self.salad and year_plain in clauses and adjective is None and r.random() < 0.12:
            # the commonest field format: the part, then its bare year ("Bracket: 1985, steel,
            # good"), in any part of a multi-part note: a part name before a year is no label
            clauses.remove(year_plain)
            clauses.insert(0, year_text(year, r))
            head = r.choice([f"{part}: ", f"{part} ", f"{part.capitalize()}: ", f"{part} - "])
            text = head + sep.join(clauses)
        if clauses and adjective is None and r.random() < 0.07:   # the whole part replaced: the old one's facts first
            om = r.choice([x for v in C.MATERIALS.values() for x in v])
            oy, oc = year_text(r.choice([y for y in self.years if y != year]), r), r.choice([x for v in C.CONDITIONS.values() for x in v])
            old_facts = r.sample([om, oy, f"{oc} condition"], r.choice([1, 2, 3]))
            text = r.choice([
                f"the old {part} ({', '.join(old_facts)}) was removed; new one fitted: ",
                f"replaced the {part} that was {', '.join(old_facts)}. New part: ",
                f"previous {part} was {' and '.join(old_facts)}, we fitted a new one, ",
                f"took out the old {part} ({', '.join(old_facts)}) and put in one that is "]) + sep.join(clauses)
            phen.append("part_replaced")
        if clauses and r.random() < 0.3:
            text = sprinkle(text, r, made_up=self.salad)
            phen.append("sprinkled")
        if clauses and r.random() < 0.15:          # facts inside a narrative sentence
            subject = adjective.strip(" :,").removeprefix("the ").removeprefix("a ") if adjective else part
            text = f"{r.choice(self.filler)} and the {subject} is {', '.join(clauses)}, then {r.choice(self.filler).lower()}"
            phen.append("narrative")
        return text, R.states_of(year, material, condition), year

    def note(self) -> dict:
        """One note; verdicts balanced ~1/3 each (drawn target, regenerated until it matches)."""
        target = self.r.choice(R.VERDICTS)
        for _ in range(50):
            rec = self._note(lean=target != "non_compliant")
            if rec["verdict"] == target:
                break
        self.n += 1
        rec["id"] = f"f{self.n:07d}"
        return rec

    def _note(self, lean: bool) -> dict:
        r = self.r
        phen: list[str] = []
        n_comp = 1 if r.random() < 0.75 else r.choice([2, 2, 2, 3, 4])
        parts = r.sample(PARTS, n_comp)
        texts, states, years = [], [], []
        for p in parts:
            missing = set()
            if r.random() < 0.4:                    # ~40 % of components leave something out
                # (all three only when the note is about one part: a part named with no fact
                # at all inside a list of others is not a record of it)
                k = r.choice([1, 1, 1, 2, 3] if n_comp == 1 else [1, 1, 2])
                missing = set(r.sample(R.ATTRIBUTES, k))
                phen.append("missing")
            t, s, y = self._component(p, missing, phen, lean)
            texts.append(t)
            states.append(s)
            years.append(y)
        if n_comp > 1:
            phen.append("multi")
        st = R.combine(states) if n_comp > 1 else states[0]
        yv = None
        if st["year"] == R.VIOLATES:
            yv = next(y for y, s in zip(years, states) if s["year"] == R.VIOLATES)
        else:
            yv = next((y for y in years if y is not None), None)
        joins = [". ", ".\n", "; ", " and the ", "\n- ", ". Next, the ", ". Then the ", "; plus the ",
                 " | ", ", ", " and "]
        if self.salad and n_comp > 1 and r.random() < 0.3:
            # components joined by words never seen ("Also", "Item 2:" in another author's hand)
            body = texts[0]
            for t in texts[1:]:
                body += r.choice([". ", " ", "; ", ", "]) + pseudo_word(r).capitalize() + r.choice([" ", ": ", " - "]) + t
        else:
            body = r.choice(joins).join(texts)
        # narrative before/after/between (a long note: facts after 50+ words of story)
        if r.random() < 0.45:
            before = self._story(r.choice([1, 2, 3, 5, 8, 12, 16]), yv)
            after = self._story(r.choice([0, 0, 1, 2, 4, 8, 14]), yv)
            text = (before + ". " if before else "") + body + (". " + after if after else "")
            phen.append("narrative")
            if len(text) > MAX_NOTE_CHARS:
                text = body + (". " + after if after else "")
                if len(text) > MAX_NOTE_CHARS:
                    text = body
        else:
            text = body
        text = _noisy(text, r, self.typo_rate)[:MAX_NOTE_CHARS]
        rec = {"id": "", "text": text, "style": "field", "phenomena": sorted(set(phen)),
               "components": n_comp, **C.fact_fields(None, None, None, states=st, year_value=yv)}
        rec["year"] = yv
        return rec

    def _story(self, n: int, avoid_year=None) -> str:
        """n narrative sentences; now and then one with a service/booking date in it (never
        the manufacture year itself, so the year pointer's target stays unique)."""
        r = self.r
        lines = r.sample(self.filler, min(n, len(self.filler)))
        if self.salad:                             # someone else's story: words never seen
            lines = [salad(r) if r.random() < 0.35 else ln for ln in lines]
        if lines and r.random() < 0.15:
            y = r.choice([y for y in range(1990, 2031) if y != avoid_year])
            lines[r.randrange(len(lines))] = r.choice(DATED_FILLER)(r, y)
        return ". ".join(lines)

    def notes(self, n: int) -> list[dict]:
        return [self.note() for _ in range(n)]
