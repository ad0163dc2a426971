"""Corpus generator (rule labels, hand-written cases, boundary years, determinism) and the
agent's note tokenizer (years it never saw, typos, contract round trip). No TensorFlow."""

import json

import pytest

from agent.tokenizer import RESERVED, Tokenizer, words, year_value
from export.compliance import corpus as C
from export.compliance.parts import PARTS


@pytest.mark.parametrize("year,material,condition,label", [
    (1985, "steel", "fair", 1),            # "Manufactured in 1985 made of steel in fair condition"
    (2010, "carbon fiber", "good", 0),     # "Good condition carbon fiber component manufactured in 2010"
    (1995, "steel", "fair", 1),            # "Steel component manufactured in 1995 in fair condition"
    (1994, "steel", "good", 1), (1995, "steel", "good", 0), (1996, "steel", "good", 0),
    (1994, "carbon fiber", "new", 1), (1995, "carbon fiber", "new", 0), (1996, "aluminium", "excellent", 0),
    (2020, "iron", "new", 1), (2020, "plastic", "excellent", 1), (2020, "steel", "poor", 1),
    (1950, "steel", "new", 1), (2030, "aluminium", "good", 0),
])
def test_rule_labels(year, material, condition, label):
    assert C.label_of(year, material, condition) == label


def _note(style, year, material, mat, condition, cond, seed=0):
    g = C.NoteGenerator(seed, typo_rate=0.0, extra_rate=0.0)
    return g.note(style=style, facts=C.Facts("alternator", year, material, mat, condition, cond))


def test_issue_examples_are_generated_with_the_rule_label():
    a = _note("classic", 1985, "steel", "steel", "fair", "fair")
    b = _note("condition_first", 2010, "carbon fiber", "carbon fiber", "good", "good")
    c = _note("material_first", 1995, "steel", "steel", "fair", "fair")
    assert (a["label"], b["label"], c["label"]) == (1, 0, 1)
    for n, must in ((a, ["1985", "steel", "fair"]), (b, ["2010", "carbon fiber", "good"]), (c, ["1995", "steel", "fair"])):
        assert all(m in n["text"].lower() for m in must), n["text"]


@pytest.mark.parametrize("year,label", [(1994, 1), (1995, 0), (1996, 0)])
def test_boundary_years_in_every_style(year, label):
    for style in C.STYLES:
        n = _note(style, year, "steel", "stainless steel", "good", "very good")
        assert n["label"] == label, (style, n["text"])
        # the year is recoverable from the text by the tokenizer (exactly one year in it)
        years = [toks for _, toks in words(n["text"]) if toks[0].startswith("<yc")]
        assert len(years) == 1, n["text"]


def _year_of(tokens):
    c, d, h = (int(t.strip("<>")[2:]) for t in tokens)
    return c * 100 + d * 10 + h * 5


def test_every_generated_note_is_unambiguous_and_labelled_by_the_rule():
    notes = C.NoteGenerator(11).notes(3000)
    assert {n["style"] for n in notes} == set(C.STYLES)
    assert 0.35 < sum(n["label"] for n in notes) / len(notes) < 0.65
    mats = {m.lower() for v in C.MATERIALS.values() for m in v}
    for n in notes:
        assert n["label"] == C.label_of(n["year"], n["material"], n["condition"])
        years = [_year_of(t) for _, t in words(n["text"]) if t[0].startswith("<yc")]
        assert years == [n["year"] - n["year"] % 5], n["text"]
        assert [t for _, t in words(n["text"], 1) if t[0].startswith("<yc")] == [
            ["<yc%d>" % (n["year"] // 100), "<yd%d>" % (n["year"] // 10 % 10), "<yu%d>" % (n["year"] % 10)]]          # one year, the right one; filler never looks like one
        low = n["text"].lower()
        # the other materials' bad words never appear (part names/remarks are clean)
        if n["material"] not in ("plastic",):
            assert "plastic" not in low, n["text"]
        if n["material"] != "iron":
            assert " iron" not in f" {low}" or "iron" in n["material"], n["text"]
        assert not any(w in low for w in (" fair", " poor")) or n["condition"] in ("fair", "poor"), n["text"]
    assert len(mats) >= 30 and len(PARTS) >= 100


def test_generator_is_deterministic_and_seed_dependent():
    a = [n["text"] for n in C.NoteGenerator(5).notes(200)]
    assert a == [n["text"] for n in C.NoteGenerator(5).notes(200)]
    assert a != [n["text"] for n in C.NoteGenerator(6).notes(200)]


def test_spec_documents_have_the_shared_shape():
    from agent.components import parse_document
    g = C.NoteGenerator(3)
    for _ in range(20):
        doc, truth = g.spec()
        vin, comps = parse_document(json.loads(json.dumps(doc)))
        assert len(vin) == 17 and [c for c, _ in comps] == [t["part"] for t in truth]


def test_holdout_split_removes_styles_and_years():
    notes = C.NoteGenerator(2).notes(2000)
    train, held = C.split_train_holdout(notes)
    assert len(train) + len(held) == len(notes) and held
    assert not any(n["style"] in C.HOLDOUT_STYLES or n["year"] in C.HOLDOUT_YEARS for n in train)


# ---- tokenizer -------------------------------------------------------------------------

def test_years_never_seen_map_to_known_bucket_tokens():
    tok = Tokenizer.fit([n["text"] for n in C.NoteGenerator(1, years=[1970, 1985, 2003, 2018]).notes(500)])
    for y in (1961, 2027, 1999, 1952):
        ids = tok.encode(f"manufactured in {y} made of steel in good condition")
        assert 1 not in ids                       # no <unk>: every year token is in the vocabulary
    assert words("yr1999")[1][1] == ["<yc19>", "<yd9>", "<yh1>"] == words("1995")[0][1]
    assert words("1994")[0][1] == ["<yc19>", "<yd9>", "<yh0>"]
    assert words("yr1999", year_grain=1)[1][1] == ["<yc19>", "<yd9>", "<yu9>"]
    assert words("'85")[0][1] == words("1985")[0][1]
    assert words("'05")[0][1] == words("2005")[0][1]
    assert words("mileage 125,000 km PN 4711")[1:3] == [("125", ["<num>"]), ("000", ["<num>"])]
    assert words("PN 4711")[1] == ("4711", ["<num>"])


def test_tokenizer_normalises_case_punctuation_and_typos():
    tok = Tokenizer.fit(["made of plastic in good condition", "made of stainless steel in fair condition"] * 3)
    a = tok.encode("Made of PLASTIC, in good condition")
    assert a == tok.encode("made of plastic in good condition")
    assert tok.encode("made of plastc in good conditon") == a                 # one-edit typos
    assert tok.encode("made of stainles steel") == tok.encode("made of stainless steel")
    assert tok.encode("made of zzzz") [-1] == 1                               # unknown word -> <unk>
    assert tok.encode("")  == [0] * tok.max_len


def test_tokenizer_edit1_reads_a_typo_as_the_word_one_edit_away_only():
    """fuzzy_match "edit1": a word two edits from a vocabulary word that merely shares a
    one-letter delete with it is not read as that word ("fibr" shares "fir" with "fair":
    "carbon fibr" was the condition fair); 3-letter words are never corrected ("far" would be
    fair); a manifest without the field encodes exactly as before (delete1)."""
    from agent.tokenizer import one_edit
    for a, b, e in [("fibr", "fiber", True), ("fibr", "fair", False), ("stele", "steel", True),
                    ("plastik", "plastic", True), ("exellent", "excellent", True), ("fiber", "fibre", True),
                    ("chat", "cast", False), ("steel", "steel", False), ("abcde", "abxye", False), ("abc", "abcde", False)]:
        assert one_edit(a, b) is e and one_edit(b, a) is e, (a, b)
    texts = ["made of carbon fiber in fair condition", "cast iron in fair condition", "that is fine"] * 6
    old = Tokenizer.fit(texts, min_count=1)
    new = Tokenizer.fit(texts, min_count=1, fuzzy_match="edit1")
    assert old.vocab == new.vocab
    v = lambda tok, w: tok.vocab[tok.token_id(w)]                                # noqa: E731
    assert v(old, "fibr") == "fair" and v(new, "fibr") == "fiber"
    assert v(old, "chat") == "cast" and v(new, "chat") == "that"
    assert v(new, "carbn") == "carbon" and v(new, "fiebr") == "fiber" and v(new, "iorn") == "iron"
    assert v(new, "far") == v(new, "irn") == "<unk>" and v(new, "zzzz") == "<unk>"
    m = new.to_manifest()
    assert m["fuzzy_match"] == "edit1" and "fuzzy_match" not in old.to_manifest()
    back = Tokenizer.from_manifest(json.loads(json.dumps(m)))
    assert back.encode("carbon fibr, chat") == new.encode("carbon fibr, chat") != old.encode("carbon fibr, chat")
    with pytest.raises(ValueError, match="fuzzy_match"):
        Tokenizer.from_manifest({**m, "fuzzy_match": "edit2"})


# a year-like number that is a reference or a measurement, and one that is the year
REFERENCE_NUMBERS = ["RO 1999", "ro1999", "stock #2028", "claim no 1994", "claim no. 1994", "mileage reading 1910",
                     "PN1987-22", "S/N 1994", "work order 1999", "part # 1994", "invoice 1988", "job 2019-0042",
                     "1990 km", "1985 rpm at idle", "label code 1961-A", "ref 1999/17", "odometer 1990 km",
                     "case no 1993", "tkt 1975", "VIN 2011", "1999 miles"]
MANUFACTURE_YEARS = ["built 1994-03", "1994-11-30", "2004 km 120000", "STEEL/1994/GOOD", "in good order 1994",
                     "date code 1994", "from stock. 1994 build", "the 1980s", "Q3 1996", "stamped 1994-Mar",
                     "MY2019", "yr 1999", "built 1994, 120000 km", "transmission case 1998", "storage bin: 1994",
                     "part 1994", "order 1994 steel", "1996-Q3", "made 1990-1995"]


def test_tokenizer_reads_reference_numbers_as_numbers_not_years():
    """"references": a year-like number behind a reference label, before a unit or with a code
    suffix is <num> (no year for the year head or the plausible-year check); a manufacture
    year beside such words stays a year; the lexicon travels in the manifest, and a bundle
    without the normalisation encodes as before."""
    from agent.tokenizer import REFERENCES
    norm = ("arrows", "references")
    yearish = lambda ws: [s for s, t in ws if t[0].startswith("<yc")]        # noqa: E731
    for text in REFERENCE_NUMBERS:
        assert not yearish(words(text, 5, norm)), text
        assert yearish(words(text)), text                                    # without it: a year
    for text in MANUFACTURE_YEARS:
        assert yearish(words(text, 5, norm)) == yearish(words(text)) != [], text
    both = "IGNITION COIL: production year 1958 / rated new / RO 1999 / boron steel part"
    assert yearish(words(both, 5, norm)) == ["1958"]
    texts = ["made of steel in 1994, RO 2001", "stock 1988 built 2003"] * 3
    tok = Tokenizer.fit(texts, min_count=1, normalize=norm)
    old = Tokenizer.fit(texts, min_count=1, normalize=("arrows",))
    m = tok.to_manifest()
    assert m["normalize"] == list(norm) and m["references"] == REFERENCES and "references" not in old.to_manifest()
    back = Tokenizer.from_manifest(json.loads(json.dumps(m)))
    assert back.encode(texts[1]) == tok.encode(texts[1]) != old.encode(texts[1])
    assert back.encode(texts[1]).count(tok.index["<num>"]) == 1
    # the lexicon the bundle carries is the one that reads its notes
    mine = Tokenizer.from_manifest({**m, "references": {**REFERENCES, "labels": ["ro"]}})
    assert mine.encode("stock 1988") != back.encode("stock 1988") and mine.encode("RO 1988") == back.encode("RO 1988")
    with pytest.raises(ValueError, match="references"):
        Tokenizer.from_manifest({k: v for k, v in m.items() if k != "references"})


def test_tokenizer_manifest_round_trip_and_truncation():
    tok = Tokenizer.fit([n["text"] for n in C.NoteGenerator(4).notes(300)], max_len=12)
    back = Tokenizer.from_manifest(json.loads(json.dumps(tok.to_manifest())))
    assert back.vocab[:len(RESERVED)] == RESERVED
    text = "made of steel in good condition manufactured in 1999 " * 5
    assert back.encode(text) == tok.encode(text) and len(tok.encode(text)) == 12
    assert 0 not in tok.encode(text)
    with pytest.raises(ValueError):
        Tokenizer(["a", "b"])


# ---- field-style notes, the second author, the hand-written file ----------------------

def _fact_words():
    mats = {"plastic", "iron", "steel", "stainless", "aluminium", "aluminum", "alu", "carbon", "fiber", "fibre",
            "carbonfiber", "cf"}
    return mats, {"poor", "fair", "good", "new", "excellent"}


def test_field_notes_are_labelled_by_the_rule_and_missing_facts_are_really_missing():
    from agent import regulation as R
    from export.compliance.field_notes import FILLER, FieldNoteGenerator
    mats, conds = _fact_words()
    for s in FILLER:                                  # narrative never carries a fact
        ws = set(s.lower().split())
        assert not ws & (mats | conds), s
        assert not [t for _, t in words(s) if t[0].startswith("<yc")], s
    notes = FieldNoteGenerator(5).notes(3000)
    kinds = {p for n in notes for p in n["phenomena"]}
    assert {"missing", "narrative", "replacement", "negation", "distractor", "multi", "decade", "part_replaced"} <= kinds
    counts = {v: sum(n["verdict"] == v for n in notes) for v in R.VERDICTS}
    assert all(800 < c < 1200 for c in counts.values()), counts          # balanced verdicts
    for n in notes:
        assert n["verdict"] == R.verdict(n["states"]) and len(n["text"]) <= 2000 and n["text"].strip()
        assert n["label"] == {"compliant": 0, "non_compliant": 1}.get(n["verdict"])
        low = n["text"].lower()
        # (a replaced part may name the old one's condition: the new one's is what counts)
        if n["components"] == 1 and n["states"]["condition"] == R.NOT_STATED and "part_replaced" not in n["phenomena"]:
            assert not any(f" {c} " in f" {low} " for c in ("poor", "fair", "excellent")), n["text"]
        if n["states"]["year"] == R.NOT_STATED and n["components"] == 1:
            assert n["year_value"] is None
        elif "decade" not in n["phenomena"]:
            assert any(year_value(s) == n["year_value"] for s, _ in words(n["text"])), n["text"]
    assert [n["text"] for n in FieldNoteGenerator(5).notes(50)] == [n["text"] for n in notes[:50]]
    # every stated fact of a one-part note is in its text (typos off): a label never claims
    # a material or condition the note does not write
    forms = {k: {w for f in v for w in f.lower().replace("(", " ").replace(")", " ").split()}
             for k, v in (*C.MATERIALS.items(), *C.CONDITIONS.items())}
    for n in FieldNoteGenerator(6, typo_rate=0.0).notes(3000):
        if n["components"] != 1:
            continue
        low = set(n["text"].lower().replace(",", " ").replace(".", " ").replace(";", " ").replace(":", " ")
                  .replace("(", " ").replace(")", " ").split())
        for h in ("material", "condition"):
            if n["states"][h] != R.NOT_STATED:
                assert any(forms[k] & low for k in (C.MATERIALS if h == "material" else C.CONDITIONS)), (h, n["text"])


def test_long_notes_fit_the_largest_bucket_and_are_not_truncated():
    from export.compliance.field_notes import FieldNoteGenerator
    tok = Tokenizer.fit([n["text"] for n in FieldNoteGenerator(2).notes(500)], buckets=(48, 96, 192, 384, 1024))
    longest = "Checked the mounting points again and again. " * 43 + "alternator steel 2010 good"
    assert len(longest) <= 2000
    row = tok.encode(longest)
    assert len(row) in tok.buckets and row[-1] == tok.index["good"]
    ids = [i for _, w in tok.word_ids(longest) for i in w]
    assert len(ids) == sum(len(t) for _, t in words(longest))          # nothing cut off
    assert len(tok.encode("steel 2010 good")) == 48                     # a short note: today's length
    back = Tokenizer.from_manifest(json.loads(json.dumps(tok.to_manifest())))
    assert back.encode(longest) == row and back.buckets == tok.buckets


@pytest.mark.parametrize("text,year", [
    ("nineteen ninety-four", 1994), ("Nineteen Ninety Four", 1994), ("twenty twelve", 2012),
    ("two thousand and five", 2005), ("two thousand twelve", 2012), ("nineteen eighty", 1980),
    ("1994", 1994), ("'94", 1994), ("'05", 2005),
])
def test_years_in_words_read_as_the_year(text, year):
    ws = words(f"built {text}, steel")
    assert ws[1][0].lower() == text.lower() and ws[1][1] == words(str(year))[0][1]
    assert year_value(ws[1][0]) == year


def test_numbers_in_words_that_are_not_years_stay_words():
    assert [t for _, t in words("twenty one bolts")] == [["twenty"], ["one"], ["bolts"]]
    assert year_value("twenty") is None and year_value("PN") is None and year_value("4711") is None


def test_the_held_out_author_and_hand_written_notes_are_not_the_training_generators():
    from agent import regulation as R
    from export.compliance.field_notes import FieldNoteGenerator
    from export.compliance.heldout_author import AuthorNoteGenerator, load_handwritten
    import re
    train = " ".join(n["text"].lower() for n in FieldNoteGenerator(1).notes(3000))
    train += " ".join(n["text"].lower() for n in C.NoteGenerator(1).notes(3000))
    # the second author's distinctive wordings (heldout_author.py) never come out of training
    for phrase in ("fabricated", "production year", "came off the line", "composed of", "constructed from",
                   "changed out", "after the swap from", "i'd call it", "label code", "claim no",
                   "mileage reading", "build date", "manufactured circa", "customer dropped the car off",
                   "apprentice assisted", "penetrating oil", "recall database", "isn't", "->"):
        assert phrase not in train, phrase
    for pattern in (r"\b(graded|rated|looks) (pretty |quite |only |really |factory |in )?(poor|fair|good|new|excellent)",
                    r"\bdates to (early |late |week )?\d", r"\bstamped \d", r"\bcast in (early |late )?\d",
                    r"[/;,] stock \d{4}", r"\bro \d{4}"):   # (a sprinkled filler word "stock" may precede a year)
        assert not re.search(pattern, train), (pattern, re.search(pattern, train))
    author = AuthorNoteGenerator(9).notes(500)
    assert {n["verdict"] for n in author} == set(R.VERDICTS)
    hand = load_handwritten()
    assert len(hand) >= 300
    assert {n["verdict"] for n in hand} == set(R.VERDICTS)
    assert sum(n["verdict"] == "undetermined" for n in hand) >= 40
    tagged = {t for n in hand for t in n["phenomena"]}
    assert {"missing", "narrative", "replacement", "negation", "distractor", "multi", "year_words", "typo",
            "decade", "date", "issue"} <= tagged


def test_tokenizer_reads_arrows_and_negated_contractions_when_the_bundle_asks():
    norm = ("arrows", "contractions")
    for arrow in ("->", "=>", "→", " > ", "-->"):
        assert [w for w, _ in words(f"plastic{arrow}steel", normalize=norm)] == ["plastic", "to", "steel"], arrow
    assert [w for w, _ in words("isn't plastic, it's steel", normalize=norm)][:3] == ["is", "not", "plastic"]
    assert [w for w, _ in words("doesn’t look like iron", normalize=norm)][:2] == ["does", "not"]
    assert [w for w, _ in words("it's steel", normalize=(*norm, "copula"))] == ["it", "is", "steel"]
    assert [w for w, _ in words("it's steel", normalize=norm)] == ["it", "s", "steel"]
    # older bundles (no `normalize`) encode exactly as before; a year range keeps its digits
    assert [w for w, _ in words("plastic -> steel")] == ["plastic", "steel"]
    assert [w for w, _ in words("1994-11-30 > 50 km", normalize=norm)][:3] == ["1994", "11", "30"]
    tok = Tokenizer.fit(["plastic to steel", "is not iron"] * 5, normalize=norm)
    again = Tokenizer.from_manifest(tok.to_manifest())
    assert again.normalize == norm and again.encode("iron -> steel") == tok.encode("iron to steel")
    assert Tokenizer.from_manifest({**tok.to_manifest(), "normalize": []}).encode("iron -> steel") != tok.encode(
        "iron to steel")
    with pytest.raises(ValueError):
        Tokenizer(tok.vocab, normalize=("stemming",))


def test_made_up_words_never_read_as_a_fact_word():
    """The pseudo-words training puts in narrative and labels (field_notes.pseudo_word) must
    stay unknown or narrative: the tokenizer's one-edit lookup must never turn one into a
    material, condition, cue, negation or number word, or a made-up story would carry facts."""
    import random
    from export.compliance import field_notes as F
    mats, conds = _fact_words()
    notes = F.FieldNoteGenerator(3).notes(2000)
    tok = Tokenizer.fit([n["text"] for n in notes], min_count=5)
    protected = mats | conds | {"not", "no", "never", "was", "now", "replaced", "swapped", "built", "made",
                                "manufactured", "year", "dated", "unknown", "condition", "material"}
    r = random.Random(11)
    seen = set()
    for _ in range(5000):
        w = F.pseudo_word(r)
        seen.add(w)
        mapped = tok.vocab[tok.token_id(w)]
        assert mapped not in protected, (w, mapped)
    assert len(seen) > 2000                                  # really varied, not a handful of words
    for _ in range(300):
        s = F.salad(r).lower()
        ws = [t for _, ts in words(s) for t in ts]
        assert not set(ws) & (mats | conds) and not any(t.startswith("<y") or t == "<num>" for t in ws), s
    # the generator really writes them (narrative and unknown labels), and not with salad=False
    import re
    vocab = lambda ns: set(re.findall(r"[^\W\d_]+", " ".join(n["text"].lower() for n in ns)))  # noqa: E731
    extra = (vocab(F.FieldNoteGenerator(3, typo_rate=0.0).notes(2000))              # (typos off: a typo
             - vocab(F.FieldNoteGenerator(3, typo_rate=0.0, salad=False).notes(2000)))  # is meant to read as its word)
    assert len(extra) > 1000
    assert all(tok.vocab[tok.token_id(w)] not in protected for w in extra)
