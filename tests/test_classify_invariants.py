"""What a user of `ComplianceClassifier.classify` relies on, whatever the bundle (issue 14:
the hot path was rewritten for speed; these pin the behaviour it must keep).

- A list gives what its notes give one by one. With a model whose rows do not influence
  each other (a small fp32 ONNX graph built here) that holds EXACTLY, `why` included: it
  checks the bookkeeping of rows, bucket lengths, occlusion variants and the two-stage
  `why` of long notes. A dynamically quantized int8 bundle rescales activations per ORT
  run, so a note's probabilities move slightly with the other rows of the run: for any
  bundle the verdict and the fact states must agree (>= 99 %) here; the shipped
  weight-only int8 bundle agrees to 1e-4 (tests/test_compliance_model.py).
- The order of the notes does not matter (exactly: the same rows go into the same runs).
- `why` names words of the note, a fact's `where` is the clause of the note holding its
  first word (or "" when that word is not a whole word of the raw text), the note's `why` is made of its facts' words as the verdict says, and the
  year value is the year the fact's word stands for.
- Note by note, the same note always gives the same result (a length's one-row runs move to
  a fixed-shape session after a few).
- The tokenizer's fast word_ids / word_entries give what the reference words() + token_id give.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from agent import regulation as R
from agent.bundle import DEFAULT_COMPLIANCE_BUNDLE, verify_bundle
from agent.classify import ComplianceClassifier
from agent.tokenizer import Tokenizer, words, year_value

LONG = ("Customer says the noise started after the last service. We checked the belt and the "
        "pulleys; nothing loose. Road test done twice on the ring road. Tech notes the bracket "
        "was replaced last winter and the paint is chipped near the mount; cleaned and greased. "
        "Second opinion asked from the shop lead, who agreed with the reading. ")


def _notes(n: int, seed: int) -> list[str]:
    from export.compliance.corpus import NoteGenerator
    from export.compliance.field_notes import FieldNoteGenerator
    from export.compliance.heldout_author import AuthorNoteGenerator
    out = [x["text"] for x in NoteGenerator(seed).notes(n)]
    out += [x["text"] for x in FieldNoteGenerator(seed).notes(n)]
    out += [x["text"] for x in AuthorNoteGenerator(seed).notes(n)]
    out += [LONG + "Alternator steel, built 2011, good condition.",
            LONG * 2 + "Bracket: 1985, cast iron, poor. Pump: 2012, steel, good.",
            "nineteen ninety four alloy good", "'85 steel poor", "??? !!!", "plastic -> steel, built 1999, it's fine"]
    return out


@pytest.fixture(scope="module")
def shipped():
    return ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))


def _row_independent_model(tok: Tokenizer) -> bytes:
    """tokens -> per head: sum over steps of a per-token logit vector + bias; year_pos: a
    per-token score. fp32 Gather / ReduceSum / Add, the weights multiples of 1/16 so every
    sum is exact whatever order ORT adds in (its ReduceSum adds differently for one row
    than for many): a row's outputs depend on that row only."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    V = len(tok.vocab)
    rng = np.random.default_rng(7)
    inits, nodes, outs = [], [], []
    cues = {"year": (["<yc19>"], ["<yc20>"]), "material": (list(R.BAD_MATERIALS), ["steel", "aluminum", "aluminium"]),
            "condition": (list(R.BAD_CONDITIONS), ["good", "new", "excellent"])}
    for h in R.ATTRIBUTES:
        w = rng.normal(0, 0.3, (V, 3)).astype(np.float32)
        w[0] = 0
        bad, good = cues[h]
        for t in bad:
            if t in tok.index:
                w[tok.index[t], 0] += 4
        for t in good:
            if t in tok.index:
                w[tok.index[t], 1] += 4
        w = np.round(w * 16) / 16
        inits += [numpy_helper.from_array(w, f"W_{h}"), numpy_helper.from_array(np.array([0, 0, 2], np.float32), f"b_{h}")]
        nodes += [helper.make_node("Gather", [f"W_{h}", "tokens"], [f"e_{h}"]),
                  helper.make_node("ReduceSum", [f"e_{h}", "axes"], [f"s_{h}"], keepdims=0),
                  helper.make_node("Add", [f"s_{h}", f"b_{h}"], [h])]
        outs.append(helper.make_tensor_value_info(h, TensorProto.FLOAT, ["batch", 3]))
    inits += [numpy_helper.from_array(np.array([1], np.int64), "axes"),
              numpy_helper.from_array(rng.normal(0, 1, V).astype(np.float32), "W_pos")]
    nodes.append(helper.make_node("Gather", ["W_pos", "tokens"], ["year_pos"]))
    outs.append(helper.make_tensor_value_info("year_pos", TensorProto.FLOAT, ["batch", "length"]))
    g = helper.make_graph(nodes, "row_independent", [helper.make_tensor_value_info("tokens", TensorProto.INT32,
                                                                                     ["batch", "length"])], outs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


@pytest.fixture(scope="module")
def row_independent(shipped):
    return ComplianceClassifier(_row_independent_model(shipped.tokenizer), shipped.tokenizer, min_p_complies=0.8)


@pytest.mark.parametrize("explain", [True, False])
def test_a_list_is_its_notes_one_by_one_exactly_when_rows_are_independent(row_independent, explain):
    notes = _notes(60, 1)
    tok = row_independent.tokenizer
    assert len({len(tok.encode(n)) for n in notes}) >= 3                       # several bucket lengths
    assert any(len(tok.word_ids(n)) > 40 for n in notes)                       # a two-stage `why`
    batch = row_independent.classify(notes, explain=explain)
    assert batch == [row_independent.classify([n], explain=explain)[0] for n in notes]
    assert any(v["why"] for v in batch) == explain


def test_why_is_the_words_whose_occlusion_weakens_the_head_most(row_independent):
    """An oracle for the occlusion `why` of short notes: each word replaced by <unk> on its
    own, one row per run; the margin (chosen class logit minus the best other) drop ranks
    the words (ties: the earlier word); the first counts if it weakens the head, further ones
    (up to 3) if they weaken it by >= max(1, half the first)."""
    clf, tok = row_independent, row_independent.tokenizer
    unk = tok.index["<unk>"]

    def run(row):
        out = clf.session.run(list(R.ATTRIBUTES), {"tokens": np.asarray([row], dtype=np.int32)})
        return [o[0].astype(np.float64) for o in out]

    def margin(lg, c):
        return lg[c] - max(v for i, v in enumerate(lg) if i != c)

    checked = 0
    for text in _notes(40, 8):
        groups = tok.word_ids(text)
        if len(groups) > 40:
            continue
        flat = [i for _, ids in groups for i in ids]
        L = len(tok.encode(text))
        row = [0] * (L - len(flat)) + flat
        spans, pos = [], L - len(flat)
        for surface, ids in groups:
            if any(i != unk for i in ids):
                spans.append((surface, pos, len(ids)))
            pos += len(ids)
        base = run(row)
        occluded = []
        for _, p, n in spans:
            v = list(row)
            v[p:p + n] = [unk] * n
            occluded.append(run(v))
        res = clf.classify([text], by_part=False)[0]        # (the readings re-read parts: other rows)
        for hi, h in enumerate(R.ATTRIBUTES):
            f = res["facts"][h]
            if f["state"] == R.NOT_STATED or h == "year":
                continue
            c = R.STATES.index(f["state"])
            d = sorted(((margin(base[hi], c) - margin(o[hi], c), j) for j, o in enumerate(occluded)),
                       key=lambda x: (-x[0], x[1]))
            want: list[str] = []
            for rank, (delta, j) in enumerate(d[:3]):
                if delta <= 0 or (rank and delta < max(1.0, 0.5 * d[0][0])):
                    break
                if spans[j][0].lower() not in (w.lower() for w in want):
                    want.append(spans[j][0])
            assert f["why"] == want, (text, h, f, d[:3])
            checked += 1
    assert checked > 50


def test_a_list_gives_the_verdict_and_facts_of_its_notes_one_by_one(shipped):
    notes = _notes(70, 2)
    for explain in (True, False):
        batch = shipped.classify(notes, explain=explain)
        one = [shipped.classify([n], explain=explain)[0] for n in notes]
        same_verdict = np.mean([a["verdict"] == b["verdict"] for a, b in zip(batch, one)])
        same_facts = np.mean([all(a["facts"][h]["state"] == b["facts"][h]["state"] for h in R.ATTRIBUTES)
                              for a, b in zip(batch, one)])
        assert same_verdict >= 0.99 and same_facts >= 0.99, (explain, same_verdict, same_facts)
        # the int8 batch effect moves probabilities by little
        dp = max(abs(a["p_noncompliant"] - b["p_noncompliant"]) for a, b in zip(batch, one))
        assert dp < 0.2, dp


@pytest.mark.parametrize("explain", [True, False])
def test_the_order_of_the_notes_does_not_matter(shipped, explain):
    notes = _notes(50, 3)
    perm = list(range(len(notes)))
    random.Random(4).shuffle(perm)
    a = shipped.classify(notes, explain=explain)
    b = shipped.classify([notes[i] for i in perm], explain=explain)
    assert [b[perm.index(i)] for i in range(len(notes))] == a
    twice = shipped.classify(notes[:7] + notes[:7], explain=explain)
    assert twice[:7] == twice[7:]


def test_one_note_at_a_time_gives_the_same_result_every_time():
    """Note by note (the daemon), a length gets a fixed-shape ORT session after a few one-row
    runs: the results must not change when it does."""
    clf = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))
    notes = _notes(15, 10)
    first = [clf.classify([n], explain=False)[0] for n in notes]
    for _ in range(3):
        assert [clf.classify([n], explain=False)[0] for n in notes] == first
    assert [clf.classify([n])[0]["verdict"] for n in notes] == [v["verdict"] for v in first]


def test_why_names_words_of_the_note_and_follows_the_verdict(shipped):
    notes = _notes(60, 5)
    res = shipped.classify(notes)
    tok = shipped.tokenizer
    n_why = n_where = 0
    for text, v in zip(notes, res):
        surfaces = {s.lower() for s, _ in tok.word_ids(text)}
        assert v["verdict"] in R.VERDICTS and v["compliant"] == R.compliant_field(v["verdict"])
        states = {h: v["facts"][h]["state"] for h in R.ATTRIBUTES}
        assert v["verdict"] == R.verdict(states)
        assert v["missing"] == [h for h in R.ATTRIBUTES if states[h] == R.NOT_STATED]
        keep = {"non_compliant": (R.VIOLATES,), "compliant": (R.COMPLIES,),
                "undetermined": (R.VIOLATES, R.COMPLIES)}[v["verdict"]]
        fact_words = {w.lower() for h in R.ATTRIBUTES if states[h] in keep for w in v["facts"][h]["why"]}
        assert {w.lower() for w in v["why"]} == fact_words, (text, v)
        assert len(v["why"]) == len({w.lower() for w in v["why"]})
        for h in R.ATTRIBUTES:
            f = v["facts"][h]
            assert 0.0 <= f["p"] <= 1.0 and len(f["why"]) <= 3
            if f["state"] == R.NOT_STATED and h != "year":
                assert f["why"] == []
            for w in f["why"]:
                assert w.lower() in surfaces, (w, text)
            if f["why"]:
                # `where` is "" when the word is not a whole word of the raw text ("MY1999",
                # "2000s", an arrow read as "to"): the clause search is on the text as written
                n_why += 1
                n_where += bool(f["where"])
                assert f["where"] in text
                if f["where"]:                  # (at most 120 characters of the clause)
                    word = re.compile(r"(?<!\w)" + re.escape(f["why"][0]) + r"(?!\w)")
                    assert any(c.strip()[:120] == f["where"] and word.search(c)
                               for c in re.findall(r"[^.;\n]+", text)), (f, text)
            else:
                assert "where" not in f
            if h == "year":
                if f["state"] == R.NOT_STATED:
                    assert f["value"] is None
                if f["value"] is not None:
                    assert f["why"][0] and year_value(f["why"][0]) == f["value"]
                    # a year on the head's side of the cut-off when the note has one
                    sides = {R.year_state(year_value(w)) for w, _ in tok.word_ids(text)
                             if year_value(w) is not None and R.plausible_year(year_value(w))}
                    assert R.year_state(f["value"]) == f["state"] or f["state"] not in sides, (f, text)
        stated = [h for h in R.ATTRIBUTES if states[h] != R.NOT_STATED]
        if stated:
            assert v["why"] or v["verdict"] == "undetermined" and not fact_words
    assert n_why > len(notes) and n_where >= 0.9 * n_why      # most notes explain something, and where
    # without `why`: no note why, and a fact's why only names the year the pointer chose
    plain = shipped.classify(notes, explain=False)
    assert all(v["why"] == [] for v in plain)
    assert all(v["facts"]["material"]["why"] == [] and len(v["facts"]["year"]["why"]) <= 1 for v in plain)
    assert np.mean([a["verdict"] == b["verdict"] for a, b in zip(res, plain)]) >= 0.99


def test_two_threads_classifying_note_by_note_get_the_results_of_one():
    """A one-row run of a length goes through buffers bound to its fixed-shape session
    (_bound_run); a run while another thread holds them takes the session's own run. Two
    threads classifying note by note with one classifier get what one thread gets."""
    import threading
    clf = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))
    notes = _notes(25, 11)
    want = [clf.classify([n], explain=False)[0] for n in notes]
    for n in notes * 3:                      # every length on its fixed-shape, bound session
        clf.classify([n], explain=False)
    got: dict[int, list] = {0: [], 1: []}

    def work(k):
        for _ in range(4):
            got[k].append([clf.classify([n], explain=False)[0] for n in notes])

    ts = [threading.Thread(target=work, args=(k,)) for k in got]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(rs == want for k in got for rs in got[k])
    assert any(callable(run) for run in clf._one_row.values())


def test_fast_word_ids_and_word_entries_equal_words_and_token_id(shipped):
    def ref(tok, text):
        out, n = [], 0
        for surface, toks in words(text, tok.year_grain, tok.normalize, tok.references):
            ids = [tok.token_id(t) for t in toks]
            if n + len(ids) > tok.max_len:
                break
            out.append((surface, ids))
            n += len(ids)
        return out

    r = random.Random(9)
    alpha = list("abcdefiklnoprstuvy ABC0123456789'\u2019->\u2192=.;,\n:/\u00e9\uff21\uff11") + [
        "nineteen ", "twenty ", "two ", "thousand ", "and ", "ninety ", "four ", "twelve ", "'85 ", "1994 ",
        "isn't ", "it's ", "isn\u2019t ", "that\u2019s ", " -> ", " > ", "plastc ", "stainles ", "RO ", "claim no ",
        "stock #", " km", "-A", "-22", "-03", "2004 ", "date code "]
    texts = _notes(20, 6) + ["".join(r.choice(alpha) for _ in range(r.randint(0, 50))) for _ in range(3000)]
    texts.append("nineteen ninety four " * 500)
    m = shipped.tokenizer.to_manifest()
    for tok in (shipped.tokenizer, Tokenizer(m["vocab"], 20, True, 1, None, ("copula",)),
                Tokenizer(m["vocab"], 24, True, 5, None, ("arrows", "references"))):
        entries: dict = {}
        for _ in range(2):                          # the second pass reads the per-word caches
            for t in texts:
                want = ref(tok, t)
                assert tok.word_ids(t) == want, t
                assert [(e[0], e[1]) for e in tok.word_entries(t, lambda s, ids: (s, ids, len(s)), entries)] == want, t


def test_the_remarks_counts_kept_change_no_result_and_stay_bounded(monkeypatch):
    """_read_parts' probe of short remarks keeps what each states (agent/classify
    _stated_counts): a second call, a note read alone, and a bound too small to keep a call's
    remarks give the same results as a classifier that never kept any; what is kept stays
    within STATED_COUNTS_KEPT."""
    import agent.classify as C
    notes = _notes(300, 12)
    clf = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))
    cold = clf.classify(notes, explain=False)
    assert len(clf._counts) > 10                       # (these notes do have remarks to probe)
    assert clf.classify(notes, explain=False) == cold
    fresh = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))
    assert [clf.classify([n], explain=False)[0] for n in notes[:60]] == cold[:60]
    assert [fresh.classify([n], explain=False)[0] for n in notes[:60]] == cold[:60]
    monkeypatch.setattr(C, "STATED_COUNTS_KEPT", 8)
    small = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))
    assert small.classify(notes, explain=False) == cold
    assert [small.classify([n], explain=False)[0] for n in notes[:60]] == cold[:60]
    assert len(small._counts) <= 8 + 1                 # (+ the clock year it was read for)


def test_a_notes_cue_words_hold_every_readings_prefilter():
    """agent/classify._cues finds in one pass, per distinct word, the cue words the readings'
    pre-filters look for: wherever a pre-filter (a regex on the lower-cased note) matches, the
    note's bit is set — cues of several words ("ran out", "per ", "fair to") included — and
    each bit is exactly "one of its pieces is in the note", on first sight of a word and from
    the kept words alike."""
    import agent.classify as C
    hints = [(C.CUE_EVENT, C._EVENT_HINT), (C.CUE_SWAP | C.CUE_WAS, C._SWAP_HINT), (C.CUE_OLD, C._OLD_HINT),
             (C.CUE_HEDGE, C._HEDGE_HINT), (C.CUE_RANGE, C._RANGE_HINT), (C.CUE_SLIP, C._SLIP_LOW),
             (C.CUE_DAMAGE, C._DAMAGE), (C.CUE_PLASTIC, C._PLASTIC_NAME)]
    r = random.Random(4)
    pieces = [p for _, ps in C._CUE_PIECES for p in ps] + ["ran out", "came in", "place of", "per ", "t tell",
                                                           "not sure", "in fact", "turns out", "fair to", "poor-to",
                                                           "conditon", "god", "irn", "NEW", "İ", "ſ", "\u2063",
                                                           " p", " F", "VG.", ":g", "=e", "-ex", "exc", " n/a",
                                                           " PA 66", "nylon", ">PP<", "cracked", "worn"]
    alpha = list("abcdefilnoprstuw ?'\u2019-.,;:()\n\t1990") + pieces
    graded = ["cond", "Condition", "CND", "grade", "rated", "state", "\u017ftate", " ", ": ", " = ", "-", ".", "p", "F",
              "vg", "e", "ex", "Exc", "n", "good", ",", "x", "\n", "/"]
    texts = _notes(40, 8) + ["".join(r.choice(alpha) for _ in range(r.randint(0, 30))) for _ in range(4000)]
    texts += ["".join(r.choice(graded) for _ in range(r.randint(1, 8))) for _ in range(20000)]
    assert sum(bool(C._GRADE_CODE.search(t)) for t in texts) > 40      # (the grade codes are tried)
    for _ in range(2):                                   # the second pass reads the kept words
        for t in texts:
            low, got = t.lower(), C._cues(t)
            for bit, hint in hints:
                if hint.search(low):
                    assert got & bit, (t, hint.pattern)
            for bit, ps in C._CUE_PIECES:
                if any(p in low for p in ps):
                    assert got & bit, (t, ps)
                else:                                # (a polymer's "pa" also counts as a word of its own)
                    assert not got & bit or bit == C.CUE_PLASTIC and "pa" in C._LETTERS.findall(low), (t, ps)
            if C._GRADE_CODE.search(t) and got & C.CUE_GRADE:     # (_spelled_out's gate: a condition word)
                assert got & C.CUE_GRADE_CODE, t


def test_the_cheaper_gates_of_replacements_and_grade_codes_find_what_the_regexes_find():
    """agent/classify._as_now cuts the former part's words exactly where _SWAP_HINT and
    _FORMER_SPANS would (its gate skips "was" without "(" or "now" in an ASCII note, and an
    ASCII note without the words every match holds: _may_name_former),
    _grade_codes finds _GRADE_CODE's matches (anchored at the condition words), and _in_code
    with the note's cues (CUE_CODE) says what it says without them."""
    import agent.classify as C
    r = random.Random(5)
    swap = list("abeiostw ,.;()\n") + ["was ", "(was ", "previously ", "originally ", "now ", "NOW", "swapped ",
                                       "from ", "for ", "with ", "the ", "replaced ", "instead ", "of ", "steel ",
                                       "plastic ", "removed ", "fitted ", "\u017fwapped ", "wa\u017f ", "and ",
                                       "made from ", "upgraded ", "conversion ", "CHANGED ", "switched ", "exchanged ",
                                       "out ", "a ", "by ", "in place of ", "rather than ", "replacing ", "replaces ",
                                       "Replacement ", "binned ", "thrown away ", "(formerly ", "(PN 12) ", "seal "]
    grade = list("abcdefgnoprstv ?.:=-/'\u2019\n") + ["cond", "condition", "condtion", "conditon", "condn", "cnd", "grade", "graded", "rating", "rated",
                                                      "state", " p", " f", " vg", " exc", " n", "CONDITION", "Cond:F",
                                                      "statement", "\u017ftate", " \u212a"]
    code = list("ab Kk-:#=.,$%\u20ac\u00b2\u0130_7") + ["price ", "g", "kg ", " lbs", "ft-lbs", "post code ", "zip",
                                                  "bay", "WDB", "A123", "phone ", "0161 ", " 443", "MY", "\u212ag", " "]
    for _ in range(20000):
        a, b = ("".join(r.choice(code) for _ in range(r.randint(0, 5))) for _ in range(2))
        c = a + "1994" + b
        assert C._in_code(c, len(a), len(a) + 4, C._cues(c)) == C._in_code(c, len(a), len(a) + 4), c
        t = "".join(r.choice(swap) for _ in range(r.randint(0, 14)))
        if r.random() < 0.3:
            t = t.upper() if r.random() < 0.5 else t.title()
        cuts = [m for m in C._FORMER_SPANS.finditer(t)] if C._SWAP_HINT.search(t.lower()) else []
        assert bool(C._as_now(t)[1]) == bool(cuts), t
        g = "".join(r.choice(grade) for _ in range(r.randint(0, 14)))
        assert [m.span() for m in C.ComplianceClassifier._grade_codes(g, g.lower())] == [
            m.span() for m in C._GRADE_CODE.finditer(g)], g


def test_the_cue_words_kept_stay_bounded_and_change_no_bits(monkeypatch):
    """agent/classify._CUE_WORDS keeps at most CUE_WORDS_KEPT words (a daemon reads notes for
    months: numbers and typos are words too); past the bound a word's bits are found again,
    the same bits."""
    import agent.classify as C
    texts = _notes(200, 14)
    want = [C._cues(t) for t in texts]
    monkeypatch.setattr(C, "_CUE_WORDS", {})
    monkeypatch.setattr(C, "CUE_WORDS_KEPT", 50)
    assert [C._cues(t) for t in texts] == want
    assert len(C._CUE_WORDS) == 50
