"""Technician-note tokenizer: the ONE implementation used to prepare training data
(export/compliance) and by the agent at inference (agent/classify.py). Pure Python.

Why it looks like this
- Words: NFKC + lower-case, split on anything that is not a letter or digit, and split
  letter/digit boundaries ("yr1999" -> "yr", 1999), so "Cond:GOOD" and "cond good" agree.
- Years generalise to numbers never seen in training: a 4-digit number 1900-2099 (or a
  two-digit "'85" / "’05") becomes year-BUCKET tokens, coarse to fine: century, decade
  digit, then the position inside the decade at the bundle's `year_grain`:
      grain 5 (default): 1961 -> <yc19> <yd6> <yh0>     1999 -> <yc19> <yd9> <yh1>
      grain 1:           1961 -> <yc19> <yd6> <yu1>
  Every bucket token is seen in training, so an unseen year (2027, 1961, 1999) is an unseen
  *combination* of known buckets that the LSTM composes; a whole-number vocabulary would
  map it to <unk>. Why not plain digits (grain 1): an embedding is categorical, it cannot
  extrapolate a threshold to a digit it never saw in that decade — trained without 1999,
  digit models read "1999" through the "9" of 1959/1989 (non-compliant) and got ~97 % on
  unseen years; with half-decade buckets 1999 reads exactly like 1995-1998. The
  regulation's 1995 cut-off falls on a half-decade, so grain 5 loses nothing; a rule with
  a cut-off inside a half-decade is trained with `year_grain=1` (stored in the bundle).
- Other numbers (mileage, part numbers) carry no compliance meaning: <num>.
- Typos: an out-of-vocabulary word (>= 4 letters) is mapped to the in-vocabulary word one
  edit away (symmetric-delete lookup, most frequent word wins, deterministic). Training
  applies the same mapping, so "plastc" and "stainles" read like their real words.
  `fuzzy_match` (in the bundle's tokenizer manifest; absent = "delete1", older bundles):
  "delete1" takes any word sharing a one-letter delete, which is also two edits apart
  ("fibr" and "fair" share "fir": "carbon fibr" read as the condition fair; "chat" read as
  "cast"); "edit1" keeps only words one true edit away (a letter missing, extra, changed,
  or two neighbours swapped), the most frequent of them. Words of 3 letters are not
  corrected in either: a letter more makes too many of them a fact word ("far" fair, "ion"
  and "ron" iron), so "god" and "irn" stay <unk>.
- Years in words ("nineteen ninety-four", "two thousand and twelve") become the same
  bucket tokens as "1994" / "2012" (one surface word), so the model reads them alike.
- Normalisation a bundle may ask for (`normalize` in its tokenizer manifest; none for older
  bundles): "arrows" reads `->`, `=>`, `→`, `>` between words as the word "to" ("plastic ->
  steel" = "plastic to steel": punctuation is otherwise dropped, and the arrow is the only
  thing saying which material is the current one); "contractions" reads "isn't" as "is not"
  (else the negation is the lone letter "t"); "copula" reads "it's" as "it is" (else "s");
  "references" reads a year-like number that is a reference or a measurement as <num>, not
  as a year: behind a reference label ("RO 1999", "stock #2028", "claim no 1994", "mileage
  reading 1910", "PN1987"), before a unit ("1990 km", "1985 rpm") or with a code suffix
  ("1961-A", "1987-22", "2019-0042"; not a date: "1994-03", "1994-11-30"). The word lists
  travel in the bundle's manifest (`references`), so a bundle reads its notes the same for
  ever. Why a lexicon: the year head cannot tell "RO 1999" from "built 1999" by a label it
  never saw, and a reference read as the manufacture year is how an undated note gets called
  compliant; a real year behind one of these labels ("stock 1994 pump") is read as not
  stated, which gives undetermined, the safe side.
- Sequences are pre-padded with 0 (the LSTM's last step then always sees the note's last
  word; no masking op needed in ONNX). A bundle with `buckets` pads each note to the
  smallest bucket length that holds it (48 tokens for a note of a few lines, up to the
  largest bucket for a 2,000-character note), the same at training and on the car, so a
  long note is read whole while a short one costs what it always did; only a note past
  the largest bucket is truncated (at the end). Without `buckets` (older bundles): one
  fixed `max_len`.

Ids: 0 = padding, 1 = <unk>, then the vocabulary in the order stored in the bundle.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

PAD, UNK = "<pad>", "<unk>"
MAX_NOTE_CHARS = 2000     # a note longer than this is refused (never truncated) wherever notes enter
NUM = "<num>"
_WORD = re.compile(r"[^\W\d_]+|\d+|'\d\d\b|\u2019\d\d\b")
_YEAR_TOKENS = ([f"<yc{c}>" for c in (19, 20)] + [f"<yd{d}>" for d in range(10)]
                + ["<yh0>", "<yh1>"] + [f"<yu{d}>" for d in range(10)])
RESERVED = [PAD, UNK, NUM] + _YEAR_TOKENS


def year_tokens(year: int, grain: int = 5) -> list[str]:
    last = f"<yh{year % 10 // 5}>" if grain == 5 else f"<yu{year % 10}>"
    return [f"<yc{year // 100}>", f"<yd{year // 10 % 10}>", last]


_UNITS = {w: i for i, w in enumerate("one two three four five six seven eight nine".split(), 1)}
_TEENS = {w: i for i, w in enumerate("ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
                                     "eighteen nineteen".split(), 10)}
_TENS = {w: i * 10 for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}


def _two_digits(ws: list[str], i: int) -> tuple[int, int] | None:
    """ws[i:] starts a number 10..99 in words -> (value, words used)."""
    if i < len(ws) and ws[i] in _TEENS:
        return _TEENS[ws[i]], 1
    if i < len(ws) and ws[i] in _TENS:
        if i + 1 < len(ws) and ws[i + 1] in _UNITS:
            return _TENS[ws[i]] + _UNITS[ws[i + 1]], 2
        return _TENS[ws[i]], 1
    return None


def _word_year(ws: list[str], i: int) -> tuple[int, int] | None:
    """A year written in words at ws[i:] -> (year, words used): "nineteen ninety four",
    "twenty twelve", "two thousand (and) five"."""
    w = ws[i]
    if w in ("nineteen", "twenty"):
        t = _two_digits(ws, i + 1)
        if t:
            return (1900 if w == "nineteen" else 2000) + t[0], 1 + t[1]
    if w == "two" and i + 1 < len(ws) and ws[i + 1] == "thousand":
        j = i + 2 + (i + 2 < len(ws) and ws[i + 2] == "and")
        t = _two_digits(ws, j)
        if t:
            return 2000 + t[0], j - i + t[1]
        if j < len(ws) and ws[j] in _UNITS:
            return 2000 + _UNITS[ws[j]], j - i + 1
    return None


NORMALIZERS = ("arrows", "contractions", "copula", "references")
_ARROW = re.compile(r"\s*(?:-+>|=+>|[\u2192\u21d2\u27f6\u2794\u279c]|(?<=\w)\s*>(?=\s*\w))\s*")
_NOT = re.compile(r"(?<=[^\W\d_])n['\u2019]t\b", re.IGNORECASE)
_IS = re.compile(r"\b(it|that|there|here|what|which|who|this)['\u2019]s\b", re.IGNORECASE)

# "references": the words that make a year-like number a reference or a measurement. A label
# right before the number (or glued to it: "RO1999"), a label + qualifier ("claim no 1994",
# "work order 1999", "part # 1994"), or a unit right after it ("1990 km", not "2004 km 120000",
# where km labels the next number). Only labels a workshop writes before a NUMBER: not "date
# code", "build", "model year", "stamped" (cues of the manufacture year).
REFERENCES = {
    "labels": sorted("""ro r/o po p/o wo job jobs invoice inv claim ticket tkt ref reference stock lot batch serial
        sn s/n pn p/n vin sku docket receipt quote quotation estimate account acct tag label rma cert
        certificate campaign tsb odometer odo mileage milage torque voucher folio dtc drawing dwg
        booking""".split()),
    # labels only with a qualifier: "order" alone ("in good order 1994" is a condition and a
    # year) and the last words of part names ("transmission case 1998", "storage bin 1994")
    "qualified": sorted("""part parts casting order work repair purchase fault paint engine chassis frame model
        catalog catalogue customer fleet policy file registration reg report warranty item service case bin
        slot""".split()),
    "qualifiers": sorted("no nr num number code reading id ref count card sheet".split()),
    "pairs": sorted(["work order", "repair order", "purchase order", "service order", "sales order", "job card",
                     "job sheet", "hour meter", "hour count"]),
    "units": sorted("""km kms kmh mi miles mile mph nm rpm revs hours hrs hr psi kpa cc ml mm kg lb lbs kw hp volts
        ohms amps""".split()),
}
_DIGIT_RUN = re.compile(r"\d{4,}")       # (a lookbehind for "not after a digit" costs 3x: runs are whole)
# what stands before a number, read backwards from it (so one anchored match per number):
# separators, a word (letters, "s/n"), optionally separators and the word before that
_BEFORE_REV = re.compile(r"(?P<s2>[ \t:#.\-]*)(?P<w2>[^\W\d_]+(?:/[^\W\d_]+)?)(?![^\W\d_])"
                         r"(?:(?P<s1>[ \t:#.\-]*)(?P<w1>[^\W\d_]+(?:/[^\W\d_]+)?)(?![^\W\d_]))?")
# what follows it: a unit (not one that labels the next number, "2004 km 120000"), or a code
# suffix: "-A", "-22", "-0042", "/17" (a date's month is no code: "1994-03", "1994/11/30")
_AFTER = re.compile(r"[ \t]*(?P<u>[^\W\d_]+)(?![^\W\d_])(?![ \t]*\d)|-(?P<a>[^\W\d_]{1,3})(?![^\W_])|[-/](?P<d>\d+)")
_MONTH_ABBR = frozenset("jan feb mar apr may jun jul aug sep oct nov dec".split())
_BEFORE_SPAN = 48


class _RefLexicon:
    def __init__(self, lists: dict):
        self.lists = {k: sorted(str(w).lower() for w in lists.get(k, ())) for k in REFERENCES}
        self.labels = frozenset(self.lists["labels"])
        self.qualified = frozenset(self.lists["qualified"]) | self.labels
        self.qualifiers = frozenset(self.lists["qualifiers"])
        self.pairs = frozenset(tuple(p.split()) for p in self.lists["pairs"])
        self.units = frozenset(self.lists["units"])


# Marks a number as a reference in a piece of a note read on its own (agent/classify.py's
# readings split notes into sentences and clauses: "casting no. 2001 - roof rail, steel, good"
# would leave a clause "2001 - roof rail ..." whose label is in another piece). Invisible, no
# word character: the surface words are the same.
REF_MARK = "\u2063"


def _is_reference(text: str, s: int, e: int, lex: _RefLexicon) -> bool:
    """Is the year-like number text[s:e] a reference or a measurement (see REFERENCES)?"""
    if s and text[s - 1] == REF_MARK:
        return True
    if s:
        b = _BEFORE_REV.match(text[max(0, s - _BEFORE_SPAN):s][::-1])
        if b:
            w2, s2 = b.group("w2")[::-1].lower(), b.group("s2")
            w1 = (b.group("w1") or "")[::-1].lower()
            ok2 = "." not in s2 or len(w2) <= 3     # "no. 1994", "ref. 1994"; not "... from stock. 1994"
            if "#" in s2 or ok2 and (w2 in lex.labels or (w1, w2) in lex.pairs or (
                    w2 in lex.qualifiers and w1 in lex.qualified
                    and ("." not in (b.group("s1") or "") or len(w1) <= 3))):
                return True
    a = _AFTER.match(text, e)
    if a is None:
        return False
    u, c, d = a.group("u"), a.group("a"), a.group("d")
    if u is not None:
        return u.lower() in lex.units
    if c is not None:
        return c.lower() not in _MONTH_ABBR                   # "1961-A", not "1994-Mar"
    return len(d) == 3 or len(d) >= 5 or (len(d) <= 2 and not 1 <= int(d) <= 12) or (
        len(d) == 4 and d[:2] not in ("19", "20"))           # "2019-0042", "1987-22"; not "1994-03", "1990-1995"


_YEARLIKE_WORDS = frozenset(str(y) for y in range(1900, 2100))
_DEFAULT_LEXICON = _RefLexicon(REFERENCES)


def reference_years(text: str, lex: _RefLexicon) -> frozenset:
    """Start offsets in `text` of the 4-digit year-like numbers that are references or
    measurements, not years (the "references" normalisation)."""
    return frozenset(m.start() for m in _DIGIT_RUN.finditer(text)
                     if m.group(0) in _YEARLIKE_WORDS and _is_reference(text, m.start(), m.end(), lex))


def _find_number(text: str, w: str, start: int) -> int:
    """Offset of the first whole number `w` in text at or after start (not inside a longer run
    of digits)."""
    while True:
        i = text.find(w, start)
        if i < 0 or ((i == 0 or not text[i - 1].isdigit()) and not text[i + len(w):i + len(w) + 1].isdigit()):
            return i
        start = i + 1


def _lexicon(references) -> _RefLexicon:
    """The "references" lexicon: REFERENCES (built once), a manifest's lists, or a lexicon."""
    if references is None:
        return _DEFAULT_LEXICON
    return references if isinstance(references, _RefLexicon) else _RefLexicon(references)


def words(text: str, year_grain: int = 5, normalize=(), references=None) -> list[tuple[str, list[str]]]:
    """Surface words of a note with their base tokens: [(surface, [token, ...]), ...]
    (`references`: the lexicon, or its lists, when `normalize` holds "references"; default
    REFERENCES)."""
    if year_grain not in (1, 5):
        raise ValueError("year_grain must be 1 or 5")
    text = unicodedata.normalize("NFKC", text)
    if "arrows" in normalize:
        text = _ARROW.sub(" to ", text)
    if "contractions" in normalize:
        text = _NOT.sub(" not", text)
    if "copula" in normalize:
        text = _IS.sub(r"\1 is", text)
    refs = reference_years(text, _lexicon(references)) if "references" in normalize else ()
    out: list[tuple[str, list[str]]] = []
    ms = list(_WORD.finditer(text))
    low = [m.group(0).lower() for m in ms]
    k = 0
    while k < len(ms):
        if low[k] in ("nineteen", "twenty", "two"):
            y = _word_year(low, k)
            if y and 1900 <= y[0] <= 2099:
                out.append((text[ms[k].start():ms[k + y[1] - 1].end()], year_tokens(y[0], year_grain)))
                k += y[1]
                continue
        m = ms[k]
        k += 1
        w = m.group(0)
        if w[0] in "'\u2019":                      # '85 -> 1985, '05 -> 2005 (cut at 30)
            yy = int(w[1:])
            out.append((w, year_tokens(2000 + yy if yy <= 30 else 1900 + yy, year_grain)))
        elif w.isdigit():
            n = int(w) if len(w) <= 6 else -1
            if len(w) == 4 and 1900 <= n <= 2099 and m.start() not in refs:
                out.append((w, year_tokens(n, year_grain)))
            else:
                out.append((w, [NUM]))
        else:
            out.append((w, [w.lower()]))
    return out


_YEAR_WORD_STARTS = frozenset(("nineteen", "twenty", "two"))
_ARROW_CHARS = frozenset("\u2192\u21d2\u27f6\u2794\u279c")


def _word_tokens(w: str, lw: str, year_grain: int) -> list[str]:
    """words()'s tokens of ONE regex word w (lw = w.lower()) that does not start a year in words."""
    if w[0] in "'\u2019":                      # '85 -> 1985, '05 -> 2005 (cut at 30)
        yy = int(w[1:])
        return year_tokens(2000 + yy if yy <= 30 else 1900 + yy, year_grain)
    if w.isdigit():
        n = int(w) if len(w) <= 6 else -1
        if len(w) == 4 and 1900 <= n <= 2099:
            return year_tokens(n, year_grain)
        return [NUM]
    return [lw]


def year_value(surface: str) -> int | None:
    """The year a surface word from `words` stands for ("1994", "'94", "nineteen ninety
    four"), or None if it is not a year."""
    s = surface.strip()
    if s[:1] in "'\u2019" and s[1:].isdigit() and len(s) == 3:
        yy = int(s[1:])
        return 2000 + yy if yy <= 30 else 1900 + yy
    if s.isdigit():
        return int(s) if len(s) == 4 and 1900 <= int(s) <= 2099 else None
    ws = [w.lower() for w in _WORD.findall(s)]
    y = _word_year(ws, 0) if ws else None
    return y[0] if y and y[1] == len(ws) else None


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


FUZZY_MATCHES = ("delete1", "edit1")


def one_edit(a: str, b: str) -> bool:
    """a and b are one edit apart: a letter missing or extra, one changed, or two
    neighbours swapped (Damerau-Levenshtein distance 1)."""
    if a == b:
        return False
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    i = 0
    while i < min(la, lb) and a[i] == b[i]:
        i += 1
    if la == lb:
        return a[i + 1:] == b[i + 1:] or (a[i + 2:] == b[i + 2:] and a[i:i + 2] == b[i:i + 2][::-1])
    return a[i + 1:] == b[i:] if la > lb else a[i:] == b[i + 1:]


class Tokenizer:
    """Vocabulary + fixed-length encoding. Build with `fit` (training) or from the bundle
    manifest's `vocab` list (agent); both encode identically."""

    def __init__(self, vocab: list[str], max_len: int = 48, fuzzy: bool = True, year_grain: int = 5,
                 buckets=None, normalize=(), fuzzy_match: str = "delete1", references=None):
        self.vocab = list(vocab)
        if fuzzy_match not in FUZZY_MATCHES:
            raise ValueError(f"unknown fuzzy_match {fuzzy_match!r} (one of {FUZZY_MATCHES})")
        self.fuzzy_match = fuzzy_match
        unknown = set(normalize) - set(NORMALIZERS)
        if unknown:
            raise ValueError(f"unknown tokenizer normalisation {sorted(unknown)}")
        self.normalize = tuple(n for n in NORMALIZERS if n in normalize)
        self._refs = _lexicon(references) if "references" in self.normalize else None
        self.buckets = tuple(sorted(int(b) for b in buckets)) if buckets else None
        if self.buckets:
            if self.buckets[0] < 1:
                raise ValueError("buckets must be positive lengths")
            max_len = self.buckets[-1]
        if self.vocab[:len(RESERVED)] != RESERVED:
            raise ValueError("vocabulary must start with the reserved tokens")
        self.max_len = int(max_len)
        self.fuzzy = bool(fuzzy)
        if year_grain not in (1, 5):
            raise ValueError("year_grain must be 1 or 5")
        self.year_grain = int(year_grain)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        # delete-1 neighbourhood of every plain word -> lowest id (= most frequent) word; for
        # "edit1" every word of that neighbourhood, most frequent first (each is checked): an
        # id, or a tuple of ids where several share the key (the head unit's RSS budget: a
        # list per key cost ~1.6 MB more)
        self._del: dict[str, int] = {}
        self._near: dict[str, int | tuple] = {}
        if self.fuzzy:
            index = self._near if fuzzy_match == "edit1" else self._del
            for i, w in enumerate(self.vocab):
                if i < len(RESERVED) or len(w) < 4:
                    continue
                for k in _deletes(w) | {w}:
                    v = index.get(k)
                    if v is None:
                        index[k] = i
                    elif index is self._near:
                        index[k] = (v, i) if type(v) is int else v + (i,)
        self._cache: dict[str, int] = {}
        self._wcache: dict[str, list[int]] = {}      # surface word -> ids (word_ids)

    @classmethod
    def fit(cls, texts, max_len: int = 48, min_count: int = 2, max_words: int = 10000,
            fuzzy: bool = True, year_grain: int = 5, buckets=None, normalize=(),
            fuzzy_match: str = "delete1", references=None) -> "Tokenizer":
        counts: Counter = Counter()
        lex = _lexicon(references) if "references" in normalize else None
        for t in texts:
            for _, toks in words(t, year_grain, normalize, lex):
                counts.update(x for x in toks if x not in RESERVED)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(RESERVED + ranked[:max_words - len(RESERVED)], max_len, fuzzy, year_grain, buckets, normalize,
                   fuzzy_match, references)

    @property
    def references(self) -> dict | None:
        """The "references" lexicon's word lists (None: the bundle does not ask for it)."""
        return self._refs.lists if self._refs else None

    def mark_references(self, text: str) -> str:
        """text with REF_MARK before each reference number, so that any piece of it read alone
        reads them as references too (the text itself when it has none, or the bundle does
        not ask for "references")."""
        if self._refs is None:
            return text
        refs = reference_years(text, self._refs)
        if not refs:
            return text
        out, last = [], 0
        for s in sorted(refs):
            out += [text[last:s], REF_MARK]
            last = s
        out.append(text[last:])
        return "".join(out)

    def to_manifest(self) -> dict:
        d = {"kind": "trey-note-tokenizer/1", "max_len": self.max_len, "fuzzy": self.fuzzy,
             "year_grain": self.year_grain, "padding": "pre", "truncating": "post", "vocab": self.vocab}
        if self.buckets:
            d["buckets"] = list(self.buckets)
        if self.normalize:
            d["normalize"] = list(self.normalize)
        if self.fuzzy_match != "delete1":
            d["fuzzy_match"] = self.fuzzy_match
        if self._refs:
            d["references"] = self._refs.lists
        return d

    @classmethod
    def from_manifest(cls, d: dict) -> "Tokenizer":
        if d.get("kind") != "trey-note-tokenizer/1":
            raise ValueError(f"unknown tokenizer kind {d.get('kind')!r}")
        if "references" in d.get("normalize", ()) and not isinstance(d.get("references"), dict):
            raise ValueError("tokenizer asks for 'references' but its manifest carries no lexicon")
        return cls(d["vocab"], d["max_len"], d.get("fuzzy", True), d.get("year_grain", 5), d.get("buckets"),
                   d.get("normalize", ()), d.get("fuzzy_match", "delete1"), d.get("references"))

    def token_id(self, tok: str) -> int:
        i = self.index.get(tok)
        if i is not None:
            return i
        i = self._cache.get(tok)
        if i is not None:
            return i
        i = 1
        if self.fuzzy and len(tok) >= 4 and self.fuzzy_match == "edit1":
            i = self._edit1(tok)
        elif self.fuzzy and len(tok) >= 4:
            # the word itself one letter longer/shorter/different from a vocabulary word
            cands = [self._del[k] for k in ({tok} | _deletes(tok)) if k in self._del]
            if cands:
                i = min(cands)
        if len(self._cache) < 100000:
            self._cache[tok] = i
        return i

    def _edit1(self, tok: str) -> int:
        """The most frequent vocabulary word one edit from tok, else <unk> (only plain words
        of 4+ letters are indexed: a reserved token is never a match)."""
        near = self._near
        best = None
        for k in {tok} | _deletes(tok):
            v = near.get(k)
            if v is None:
                continue
            for i in (v,) if type(v) is int else v:
                if (best is None or i < best) and one_edit(tok, self.vocab[i]):
                    best = i
                    break                   # (ids ascending: the first that fits is this key's best)
        return 1 if best is None else best

    def word_ids(self, text: str) -> list[tuple[str, list[int]]]:
        """[(surface word, [ids])] truncated so the total fits max_len.

        Same result as tokenising `words(text)` and mapping every token with token_id, but
        each surface word is looked up once (its ids cached; only a word that may start a
        year in words — nineteen / twenty / two — depends on the words after it and takes
        the words() path). The id lists returned are shared with the cache: do not mutate."""
        text = self._normalized(text)
        ws = _WORD.findall(text)
        cache, max_len = self._wcache, self.max_len
        out, n, k, N = [], 0, 0, len(ws)
        ms = low = None
        refs = reference_years(text, self._refs) if self._refs else None
        if refs:                        # a reference number reads <num>, wherever it stands
            ms = list(_WORD.finditer(text))
            low = [x.lower() for x in ws]
            num = [self.token_id(NUM)]
        while k < N:
            w = ws[k]
            ids = num if refs and ms[k].start() in refs else cache.get(w)
            if ids is None:
                lw = w.lower()
                if lw in _YEAR_WORD_STARTS:
                    if ms is None:
                        ms = list(_WORD.finditer(text))
                        low = [x.lower() for x in ws]
                    y = _word_year(low, k)
                    if y and 1900 <= y[0] <= 2099:
                        ids = [self.token_id(t) for t in year_tokens(y[0], self.year_grain)]
                        if n + len(ids) > max_len:
                            break
                        out.append((text[ms[k].start():ms[k + y[1] - 1].end()], ids))
                        n += len(ids)
                        k += y[1]
                        continue
                    ids = [self.token_id(lw)]           # not a year here: the plain word (not cached)
                else:
                    ids = [self.token_id(t) for t in _word_tokens(w, lw, self.year_grain)]
                    if len(cache) < 100000:
                        cache[w] = ids
            n += len(ids)
            if n > max_len:
                break
            out.append((w, ids))
            k += 1
        return out

    def word_entries(self, text: str, make, cache: dict) -> list:
        """[make(surface, ids) for surface, ids in word_ids(text)], an entry made once per
        plain surface word and kept in `cache` (only words whose ids never depend on the
        words around them; a note with a word that may start a year in words is read
        through word_ids)."""
        t = self._normalized(text)
        ws = _WORD.findall(t)
        lex = self._refs
        if lex is not None and not _YEARLIKE_WORDS.isdisjoint(ws):
            p = 0
            for w in filter(_YEARLIKE_WORDS.__contains__, ws):     # is this year-like number a reference?
                p = _find_number(t, w, p)
                if _is_reference(t, p, p + 4, lex):
                    return [make(s, ids) for s, ids in self.word_ids(text)]
                p += 4
        out = list(map(cache.get, ws))
        if None in out:
            for k, w in enumerate(ws):
                if out[k] is not None:
                    continue
                e = cache.get(w)                                # (a word seen earlier in this text)
                if e is None:
                    if w.lower() in _YEAR_WORD_STARTS:
                        return [make(s, ids) for s, ids in self.word_ids(text)]
                    ids = self._wcache.get(w)
                    if ids is None:
                        ids = [self.token_id(x) for x in _word_tokens(w, w.lower(), self.year_grain)]
                        if len(self._wcache) < 100000:
                            self._wcache[w] = ids
                    e = make(w, ids)
                    if len(cache) < 100000:
                        cache[w] = e
                out[k] = e
        if 3 * len(out) > self.max_len:                     # (no word has more than 3 tokens)
            n, max_len = 0, self.max_len
            for k, e in enumerate(out):
                n += len(e[1])
                if n > max_len:
                    return out[:k]
        return out

    def _normalized(self, text: str) -> str:
        """words()'s normalisation, skipping the steps that cannot change this text (an ASCII
        text is NFKC already; the arrow / contraction / copula patterns need their characters)."""
        plain = text.isascii()
        if not plain:
            text = unicodedata.normalize("NFKC", text)
            plain = text.isascii()
        norm = self.normalize
        if not norm:
            return text
        if "arrows" in norm and (">" in text or not (plain or _ARROW_CHARS.isdisjoint(text))):
            text = _ARROW.sub(" to ", text)
        if "'" in text or not plain and "\u2019" in text:
            if "contractions" in norm:
                text = _NOT.sub(" not", text)
            if "copula" in norm:
                text = _IS.sub(r"\1 is", text)
        return text

    def padded_len(self, n_tokens: int) -> int:
        """Length a note of n_tokens is padded to: its bucket, or the fixed max_len."""
        if self.buckets:
            for b in self.buckets:
                if n_tokens <= b:
                    return b
        return self.max_len

    def encode(self, text: str) -> list[int]:
        ids = [i for _, w in self.word_ids(text) for i in w]
        return [0] * (self.padded_len(len(ids)) - len(ids)) + ids

    def encode_batch(self, texts) -> list[list[int]]:
        """Fixed-length rows (max_len); for a bucketed tokenizer use encode_groups."""
        out = []
        for t in texts:
            ids = [i for _, w in self.word_ids(t) for i in w]
            out.append([0] * (self.max_len - len(ids)) + ids)
        return out

    def encode_groups(self, texts) -> dict[int, tuple[list[int], list[list[int]]]]:
        """{padded length: ([index of the text], [row, ...])} — one array per bucket."""
        groups: dict[int, tuple[list[int], list[list[int]]]] = {}
        for k, t in enumerate(texts):
            row = self.encode(t)
            idx, rows = groups.setdefault(len(row), ([], []))
            idx.append(k)
            rows.append(row)
        return groups
