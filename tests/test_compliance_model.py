"""The compliance model end to end: a tiny Keras LSTM trained here (once per session) on a
small generated corpus -> tf2onnx -> int8 -> signed bundle -> the agent's classifier; plus
the shipped bundle on styles and years it never saw, the CLIs and a tampered bundle."""

import json
import random
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agent.bundle import DEFAULT_COMPLIANCE_BUNDLE, BundleError, verify_bundle
from agent.classify import ComplianceClassifier
from export.compliance import corpus as C

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = DEFAULT_COMPLIANCE_BUNDLE


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One small training run (~30-60 s incl. TF import) shared by every test here."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from export.compliance.train import TrainConfig, run_training
    d = tmp_path_factory.mktemp("compliance")
    cfg = TrainConfig(out=str(d / "bundle"), artifacts=str(d / "art"), notes=4000, heldout_notes=200,
                      max_epochs=5, patience=2, seed=3, threads=1, units=24, emb=16, batch=32,
                      time_budget_s=60, mlflow=True, mlflow_uri=f"sqlite:///{d / 'mlflow.db'}", version="0.0.1-test",
                      handwritten=None, min_p_complies=0.5)    # 5 short epochs: not calibrated for the 0.8 bar
    t0 = time.monotonic()
    s = run_training(cfg)
    s["wall_s"] = time.monotonic() - t0
    s["dir"] = d
    return s


def test_small_model_learns_the_facts_quickly(trained):
    assert trained["timings"]["fit_s"] < 90
    assert trained["metrics"]["keras_test"]["n"] == 400
    # 5 short epochs on 3,200 notes: far from the shipped model, far above chance (1/3)
    assert trained["metrics"]["keras_test"]["accuracy"] >= 0.7, trained["metrics"]["keras_test"]
    assert trained["metrics"]["int8_test"]["accuracy"] >= 0.7
    for h in ("year", "material", "condition"):
        assert trained["metrics"]["int8_test"]["heads"][h] >= 0.7


def test_token_ids_identical_at_training_and_on_the_agent(trained):
    """The rows the model was trained/evaluated on (train.encode, bucketed) are exactly the
    rows the agent builds from the bundle's manifest, padding included."""
    from export.compliance.train import encode
    tok_train = trained["objects"]["tokenizer"]
    bundle = verify_bundle(trained["bundle"])
    clf = ComplianceClassifier.from_bundle(bundle)
    recs = trained["objects"]["test"] + [r for v in trained["objects"]["heldout"].values() for r in v]
    recs.append({"text": "Long story. " * 200 + "alternator steel 2010 good", "states": {
        "year": "complies", "material": "complies", "condition": "complies"}, "year_value": 2010})
    enc = encode(tok_train, recs)
    assert len(enc) >= 2                                      # several buckets in use
    for L, g in enc.items():
        for k, row in zip(g["idx"], g["x"]):
            agent_row = clf.tokenizer.encode(recs[k]["text"])
            assert len(agent_row) == L and list(row) == agent_row
    assert bundle.manifest["preprocessing"]["tokenizer"]["vocab"] == tok_train.vocab
    assert bundle.manifest["preprocessing"]["tokenizer"]["buckets"] == list(tok_train.buckets)


def test_onnx_fp32_matches_keras_and_int8_agrees_on_verdicts(trained):
    from export.compliance import onnx_export as OX
    from export.compliance.train import _decide, encode, keras_predict, onnx_predict
    recs = trained["objects"]["test"]
    enc = encode(trained["objects"]["tokenizer"], recs)
    pk = keras_predict(trained["objects"]["keras_model"], enc, len(recs))
    p32 = onnx_predict(OX.session(trained["objects"]["fp32"]), enc, len(recs))
    assert max(float(np.max(np.abs(a[h] - b[h]))) for a, b in zip(pk, p32) for h in ("year", "material", "condition")) <= 1e-3
    clf = ComplianceClassifier.from_bundle(verify_bundle(trained["bundle"]))
    agent = clf.classify([r["text"] for r in recs], explain=False, by_part=False)   # the heads' reading
    from export.compliance.train import has_years
    assert clf.min_p_complies == 0.5
    agree = np.mean([_decide(a, 0.5, y)[1] == v["verdict"]
                     for a, y, v in zip(pk, has_years(trained["objects"]["tokenizer"], recs), agent)])
    assert agree >= 0.99, agree
    par = verify_bundle(trained["bundle"]).manifest["parity"]
    assert par["fp32_vs_keras_verdict_agreement"] == 1.0 and par["int8_vs_keras_verdict_agreement"] >= 0.99


def test_weight_only_int8_reads_a_note_the_same_in_any_batch(trained):
    """The "weights" int8 form: a note's logits do not depend on the other notes in the same
    ONNX Runtime run (dynamic int8 rescales activations per run), stay within a small error
    of the float model, and the file is a fraction of the float one."""
    from export.compliance import onnx_export as OX
    from export.compliance.train import encode
    fp32 = trained["objects"]["fp32"]
    w8 = OX.quantize_int8(fp32, "weights")
    assert len(w8) < 0.5 * len(fp32)
    s8, s32 = OX.session(w8), OX.session(fp32)
    enc = encode(trained["objects"]["tokenizer"], trained["objects"]["test"])
    L, g = max(enc.items(), key=lambda kv: len(kv[1]["x"]))
    x = g["x"][:64]
    batch = s8.run(None, {OX.INPUT: x})
    ref = s32.run(None, {OX.INPUT: x})
    for i in range(0, 64, 7):
        alone = s8.run(None, {OX.INPUT: x[i:i + 1]})
        for a, b in zip(alone, batch):
            assert np.max(np.abs(a[0] - b[i])) < 1e-4
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(batch, ref)) < 0.5


def _nodes(model_bytes: bytes) -> int:
    import onnx
    return len(onnx.load_from_string(model_bytes).graph.node)


def test_lean_graph_gives_the_same_bits_with_fewer_nodes(trained):
    """The bundle ships onnx_export.lean_facts_graph's form of the model: the outputs of
    tf2onnx's graph to the last bit (float and weight-only int8, a batch and one row), in
    well under half the nodes; a graph it does not know is refused, not guessed at."""
    from export.compliance import onnx_export as OX
    from export.compliance.train import encode
    canonical = OX.export_facts_fp32(trained["objects"]["keras_model"], lean=False)
    lean = trained["objects"]["fp32"]
    assert _nodes(lean) < 0.5 * _nodes(canonical)
    tok = trained["objects"]["tokenizer"]
    rows = {L: g["x"] for L, g in encode(tok, trained["objects"]["test"]).items()}
    V = len(tok.vocab)
    assert OX.same_outputs(canonical, lean, V, rows)
    w8 = OX.quantize_int8(canonical, "weights")
    assert OX.same_outputs(w8, OX.quantize_int8(lean, "weights"), V, rows)
    assert OX.same_outputs(w8, OX.lean_facts_graph(w8), V, rows)        # the int8 graph rebuilt directly
    shipped = verify_bundle(trained["bundle"])
    assert shipped.manifest["model"]["graph"] == {
        "form": "lean (export/compliance/onnx_export.lean_facts_graph)", "nodes": _nodes(shipped.model_bytes)}
    assert _nodes(shipped.model_bytes) < 0.5 * _nodes(w8)
    # the check itself: another form of the model does not give the same bits
    assert not OX.same_outputs(canonical, OX.quantize_int8(canonical, "all"), V, rows)
    with pytest.raises(ValueError, match="lean graph already"):
        OX.lean_facts_graph(lean)
    from agent.bundle import DEFAULT_BATTERY_BUNDLE
    with pytest.raises(ValueError, match="not a max-pooled LSTM fact graph"):
        OX.lean_facts_graph(verify_bundle(DEFAULT_BATTERY_BUNDLE).model_bytes)


def test_bundle_lean_rewrites_a_bundle_without_changing_a_result(trained, tmp_path):
    """`trey-export bundle lean`: a verified bundle in tf2onnx's graph -> a new signed version
    in the lean graph whose classifier results (facts, why, where) are the same; a tampered
    or already lean bundle is refused and nothing is written."""
    from export.bundle import build_bundle
    from export.compliance import onnx_export as OX
    src, dst = tmp_path / "src", tmp_path / "dst"
    b = verify_bundle(trained["bundle"])
    m = json.loads(json.dumps(b.manifest))
    m.pop("files")
    canonical = OX.quantize_int8(OX.export_facts_fp32(trained["objects"]["keras_model"], lean=False), "weights")
    build_bundle(src, canonical, m)
    r = _cli_export(["bundle", "lean", str(src), "--out", str(dst), "--notes", "40"])
    assert r.returncode == 1 and b"give --version" in r.stderr and not dst.exists()   # "0.0.1-test": no next patch
    r = _cli_export(["bundle", "lean", str(src), "--out", str(dst), "--version", "0.0.2", "--notes", "40"])
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["nodes"][1] < 0.5 * rep["nodes"][0] and rep["notes_checked"] >= 100
    new = verify_bundle(dst)
    assert new.version == "0.0.2" and new.manifest["model"]["graph"]["rebuilt_from"]["version"] == "0.0.1-test"
    notes = [r["text"] for r in trained["objects"]["test"][:150]] + [
        "Alternator: 2010, aluminium, good. Bracket: 1985, cast iron, poor.", "Long story. " * 60 + "steel 2011 good"]
    a = ComplianceClassifier.from_bundle(verify_bundle(src)).classify(notes)
    c = ComplianceClassifier.from_bundle(new).classify(notes)
    assert a == c
    r = _cli_export(["bundle", "lean", str(src), "--out", str(tmp_path), "--version", "0.0.3"])
    assert r.returncode == 1 and b"not a bundle directory" in r.stderr and (tmp_path / "src" / "model.onnx").exists()
    r = _cli_export(["bundle", "lean", str(dst), "--out", str(tmp_path / "again"), "--version", "0.0.3"])
    assert r.returncode == 1 and b"lean graph already" in r.stderr and not (tmp_path / "again").exists()
    data = bytearray((src / "model.onnx").read_bytes())
    data[len(data) // 3] ^= 0x01
    (src / "model.onnx").write_bytes(bytes(data))
    r = _cli_export(["bundle", "lean", str(src), "--out", str(tmp_path / "x"), "--version", "0.0.3"])
    assert r.returncode == 1 and b"REFUSED" in r.stderr and not (tmp_path / "x").exists()


def _cli_export(args):
    return subprocess.run([sys.executable, "-m", "export.cli", *args], capture_output=True, cwd=str(ROOT), timeout=300)


def test_mlflow_run_has_params_metrics_and_artifacts(trained):
    import mlflow
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{trained['dir'] / 'mlflow.db'}")
    run = client.get_run(trained["mlflow_run_id"])
    assert run.data.params["lr"] == "0.002"
    for k in ("eval_loss", "eval_accuracy", "loss", "val_loss"):
        assert k in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "loss")) == len(trained["history"])
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"training_curves.png", "confusion_matrix.png", "confusion_matrix.json", "bundle"} <= arts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "bundle")} >= {
        "bundle/model.onnx", "bundle/manifest.json", "bundle/manifest.sig"}
    mv = client.get_model_version("trey-compliance", "1")          # registered, lineage to the run
    assert mv.run_id == run.info.run_id and mv.tags["bundle.sha256"] == verify_bundle(trained["bundle"]).sha256


# ---- the shipped bundle (no TensorFlow) ----------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    return ComplianceClassifier.from_bundle(verify_bundle(SHIPPED))


def test_shipped_bundle_carries_the_regulation_and_parity():
    m = verify_bundle(SHIPPED).manifest
    from agent import regulation as R
    assert m["regulation"] == R.to_manifest()
    assert m["decision"]["min_p_complies"] == R.MIN_P_COMPLIES
    assert set(m["training"]["holdout_styles"]) == set(C.HOLDOUT_STYLES)
    assert set(m["training"]["holdout_years"]) == set(C.HOLDOUT_YEARS)
    assert m["parity"]["fp32_vs_keras_verdict_agreement"] == 1.0
    assert m["parity"]["quantization"] in m["parity"]["quantization_candidates"]


def test_shipped_bundle_int8_agrees_with_keras_on_999_per_mille():
    """Issue 14's bar, on the test split + every held-out set (13,307 notes)."""
    par = verify_bundle(SHIPPED).manifest["parity"]
    assert par["n"] >= 13000 and par["int8_vs_keras_verdict_agreement"] >= 0.999, par


def test_shipped_bundle_reads_a_note_the_same_whatever_else_is_in_the_call(shipped):
    """Weight-only int8 (the shipped form): the facts and probabilities of a note do not
    depend on the other notes classified with it — `trey-agent classify` on a file, the
    daemon on one spec and `score compliance` in chunks give a note the same result."""
    from export.compliance.evaluate import heldout_sets
    assert verify_bundle(SHIPPED).manifest["parity"]["quantization"] == "weights"
    sets = heldout_sets(120, 9)
    notes = [r["text"] for v in sets.values() for r in v[:120]]
    batch = shipped.classify(notes, explain=False)
    for k in range(0, len(notes), 9):
        one = shipped.classify([notes[k]], explain=False)[0]
        assert {h: f["state"] for h, f in one["facts"].items()} == {h: f["state"] for h, f in batch[k]["facts"].items()}
        assert abs(one["p_noncompliant"] - batch[k]["p_noncompliant"]) < 1e-4, (notes[k], one, batch[k])


@pytest.fixture(scope="module")
def heldout_scores(shipped):
    from export.compliance.evaluate import heldout_sets, score
    sets = heldout_sets(2000, 424242)
    assert len(sets["handwritten"]) >= 300
    return {k: score(shipped, v) for k, v in sets.items()}


def test_shipped_bundle_on_the_held_out_sets_floors(heldout_scores):
    """Never trained on: the classic generator's unseen styles/years, the second author's
    notes, the hand-written file. Floors at the shipped model's measured level (a retrain
    must not regress): classic 99.95 %, author 99.70 %, hand-written 98.91 %; no note that
    is not compliant is called compliant."""
    res = heldout_scores
    assert res["classic"]["accuracy"] >= 0.998 and res["classic"]["not_compliant_called_compliant"] == 0
    assert res["author"]["accuracy"] >= 0.995 and res["author"]["not_compliant_called_compliant"] == 0
    assert res["handwritten"]["accuracy"] >= 0.985 and res["handwritten"]["not_compliant_called_compliant"] == 0
    for style, c in res["classic"]["by_category"].items():          # every classic style is read
        assert c["accuracy"] >= 0.99, (style, c)


def test_shipped_bundle_on_a_second_author_seed_the_evaluation_does_not_use(shipped):
    """The readings were chosen on the held-out sets; 3,000 notes of another seed of the second
    author check they were not fitted to those notes (measured: 99.60 %, 1 false compliant:
    two components where each lacks a fact and nothing marks where the second opens)."""
    from export.compliance.evaluate import score
    from export.compliance.heldout_author import AuthorNoteGenerator
    s = score(shipped, AuthorNoteGenerator(777).notes(3000))
    assert s["accuracy"] >= 0.993 and s["not_compliant_called_compliant"] <= 1, (s["accuracy"], s["errors"][:3])


def test_shipped_bundle_meets_the_issue_bars_on_the_held_out_sets(heldout_scores):
    """Overall >= 99.5 %, classic >= 99.9 %, every category >= 98 %, and no note that is not
    compliant is ever called compliant."""
    res = heldout_scores
    assert res["classic"]["accuracy"] >= 0.999, res["classic"]["errors"][:5]
    n = sum(r["n"] for r in res.values())
    overall = sum(r["accuracy"] * r["n"] for r in res.values()) / n
    assert overall >= 0.995
    for k, r in res.items():
        assert r["not_compliant_called_compliant"] == 0, k
        for cat, c in r["by_category"].items():
            assert c["accuracy"] >= 0.98, (k, cat, c)


@pytest.mark.parametrize("text,verdict,year,missing,why", [
    # the issue's examples
    ("Manufactured in 1985 made of steel in fair condition", "non_compliant", 1985, [], {"1985", "fair"}),
    ("Good condition carbon fiber component manufactured in 2010", "compliant", 2010, [], None),
    ("Steel component manufactured in 1995 in fair condition", "non_compliant", 1995, [], {"fair"}),
    ("original plastic cover replaced with a steel one; dated 2012; good", "compliant", 2012, [], None),
    ("aluminium, not plastic as the old record said. built 2008, condition good", "compliant", 2008, [], None),
    ("Alternator built nineteen ninety-four, aluminium housing, good", "non_compliant", 1994, [], {"nineteen ninety-four"}),
    ("Starter motor PN 1987-22, built 2004, steel, excellent", "compliant", 2004, [], None),
    ("Brake caliper from March 1994, cast iron, poor", "non_compliant", 1994, [], {"1994", "iron", "poor"}),
    ("leaf spring from the 1980s, steel, good", "non_compliant", 1980, [], {"1980"}),
    ("intercooler dated 1994-11-30, aluminium, like new", "non_compliant", 1994, [], {"1994"}),
    # a fact missing: never compliant
    ("water pump, aluminium, good condition", "undetermined", None, ["year"], None),
    ("fuel pump made 2015, steel body", "undetermined", 2015, ["condition"], None),
    ("fender, 2016, good", "undetermined", 2016, ["material"], None),
    ("cooling fan: plastic, no date visible", "non_compliant", None, ["year", "condition"], {"plastic"}),
    # the old notes
    ("mat: iron / yr 2027 / cond good", "non_compliant", 2027, [], {"iron"}),
    ("ABS plastic door handle, MY2021, excellent", "non_compliant", 2021, [], {"plastic"}),
    ("Alternator, built 1996, aluminium, like new", "compliant", 1996, [], None),
])
def test_shipped_bundle_hand_written_notes_facts_and_why(shipped, text, verdict, year, missing, why):
    assert shipped.classify([]) == []
    v = shipped.classify([text])[0]
    assert v["verdict"] == verdict, v
    assert v["compliant"] is {"compliant": True, "non_compliant": False, "undetermined": None}[verdict]
    assert v["facts"]["year"]["value"] == year, v
    assert v["missing"] == missing, v
    assert 0.0 <= v["p_noncompliant"] <= 1.0
    if why:
        assert why <= set(w.lower() for w in v["why"]), v
    for h, f in v["facts"].items():               # each stated fact names the words that set it
        assert (f["state"] == "not_stated") == (not f["why"]), (h, f)


def _long_note(facts_first: bool) -> str:
    from export.compliance.heldout_author import FILLER
    story = ". ".join(FILLER * 2)
    assert len(story.split()) > 250
    tail = "Gearbox mount: cast iron, manufactured 2009, good condition."
    note = (tail + " " + story if facts_first else story + ". " + tail)[:2000]
    assert tail in note
    return note


def test_shipped_bundle_reads_long_notes_whole(shipped):
    """Facts after 300+ words of workshop narrative are read; the same facts decide as in a
    short note."""
    note = _long_note(facts_first=False)
    v = shipped.classify([note])[0]
    assert v["verdict"] == "non_compliant" and v["facts"]["material"]["state"] == "violates", v
    assert "iron" in v["why"]
    v = shipped.classify([note.replace("cast iron", "aluminium")])[0]
    assert v["verdict"] == "compliant" and v["facts"]["year"]["value"] == 2009, v


def test_shipped_bundle_reads_every_fact_of_a_long_note(shipped):
    """Every fact, not only the violating one, with the facts before or after 300 words."""
    for facts_first in (False, True):
        note = _long_note(facts_first)
        v = shipped.classify([note])[0]
        assert v["verdict"] == "non_compliant" and v["facts"]["year"]["value"] == 2009, v
        v = shipped.classify([note.replace("cast iron", "aluminium")])[0]
        assert v["verdict"] == "compliant", v


def test_shipped_bundle_several_components_in_one_note(shipped):
    v = shipped.classify(["Alternator: 2010, aluminium, good. Bracket: 1985, cast iron, poor."])[0]
    assert v["verdict"] == "non_compliant"
    assert {"iron", "poor"} <= {w.lower() for w in v["why"]}
    assert all(v["facts"][h]["where"].startswith("Bracket") for h in ("material", "condition")), v
    v = shipped.classify(["seat rail steel 2014 good; seat frame aluminium 2015 excellent"])[0]
    assert v["verdict"] == "compliant", v


def test_shipped_bundle_reads_each_part_of_a_note_about_several(shipped):
    """A whole record of one part that violates makes the note non-compliant, and a part
    written without one of its facts leaves that fact not stated — even where the whole-note
    reading took the other part's facts for it (agent/classify._read_parts). A sentence
    about the part that was removed decides nothing."""
    v = shipped.classify(["Alternator: 2010, aluminium, good. Bracket: 1985, steel, good."])[0]
    assert v["verdict"] == "non_compliant" and v["facts"]["year"]["value"] == 1985, v
    assert v["facts"]["year"]["part"].startswith("Bracket") and "1985" in v["why"], v
    v = shipped.classify(["Alternator: 2010, aluminium, good. Bracket: 2012, steel."], explain=False)[0]
    assert v["verdict"] == "undetermined" and v["missing"] == ["condition"], v
    assert v["facts"]["condition"]["part"] == "Bracket: 2012, steel"
    whole = shipped.classify(["Alternator: 2010, aluminium, good. Bracket: 2012, steel."], by_part=False)[0]
    assert whole["verdict"] == "compliant"                 # what the part-by-part reading is for
    v = shipped.classify(["Old camshaft (cast iron, 1986, poor) removed; new camshaft steel 2023 new fitted."])[0]
    assert v["verdict"] == "compliant", v
    assert shipped.classify(["Alternator: 2010, aluminium, good. Bracket: 2001, steel, good."])[0]["verdict"] == "compliant"


def test_shipped_bundle_on_plain_two_part_notes(shipped):
    """400 notes of two parts in the plainest field formats, a part now and then without one
    of its facts: the verdict is right for >= 99.5 % and none is a false compliant
    (measured: 400 right; the whole-note reading alone: 97.25 %, 6 false compliants; with
    the part-by-part reading of notes with two dated parts only: 99.0 %, 3 — parts written
    without their year beside a dated one, now read part by part as every compliant note
    of several parts is)."""
    import random
    from agent import regulation as R
    from export.compliance.parts import PARTS
    r = random.Random(5)
    mats = {"aluminium": "aluminium", "steel": "steel", "cast iron": "iron", "plastic": "plastic",
            "carbon fibre": "carbon fiber"}
    notes = []
    for _ in range(400):
        comps, states = [], []
        for _k in range(2):
            y = r.choice([r.randint(1960, 1994), r.randint(1995, 2025), r.randint(1995, 2025)])
            m, c, p = r.choice(list(mats)), r.choice(["good", "new", "excellent", "fair", "poor"]), r.choice(PARTS)
            comps.append(r.choice([f"{p.capitalize()}: {y}, {m}, {c}", f"{p} built {y}, {m}, {c} condition",
                                   f"{p} {m} {y} {c}"]))
            states.append(R.states_of(y, mats[m], c))
        if r.random() < 0.4:
            k, gone = r.randrange(2), r.choice(R.ATTRIBUTES)
            y, m, c = r.randint(1995, 2025), r.choice(["aluminium", "steel", "carbon fibre"]), r.choice(["good", "new"])
            said = {"year": str(y), "material": m, "condition": c}
            del said[gone]
            comps[k] = f"{r.choice(PARTS).capitalize()}: " + ", ".join(said.values())
            states[k] = R.states_of(None if gone == "year" else y, None if gone == "material" else mats[m],
                                    None if gone == "condition" else c)
        notes.append((r.choice([". ", "; ", " and the ", "\n"]).join(comps), R.verdict(R.combine(states))))
    res = shipped.classify([n for n, _ in notes], explain=False)
    right = sum(v["verdict"] == t for v, (_, t) in zip(res, notes))
    false_compliant = sum(v["verdict"] == "compliant" and t != "compliant" for v, (_, t) in zip(res, notes))
    assert right >= 398 and false_compliant == 0, (right, false_compliant)


def test_shipped_bundle_reads_parts_joined_by_commas_part_by_part(shipped):
    """Two parts written in one sentence, joined by commas ("crankshaft forged steel 2001
    good, camshaft steel 1990 good"), each dated: read clause by clause like parts in two
    sentences. 400 such notes written for this test (measured: 398 right, 1 false compliant
    — a part whose own record has commas in it, "horn aluminium, 1994, excellent", is no
    whole clause; the whole-note reading alone: 394, 2); and a record with a dated reference
    number after a comma is not split into parts."""
    import random
    from agent import regulation as R
    from export.compliance.parts import PARTS
    r = random.Random(11)
    mats = {"aluminium": "aluminium", "steel": "steel", "cast iron": "iron", "plastic": "plastic",
            "carbon fibre": "carbon fiber", "forged steel": "steel"}
    notes = []
    for _ in range(400):
        comps, states = [], []
        for _k in range(2):
            y = r.choice([r.randint(1960, 1994), r.randint(1995, 2025), r.randint(1995, 2025)])
            m, c, p = r.choice(list(mats)), r.choice(["good", "new", "excellent", "fair", "poor", "very good"]), r.choice(PARTS)
            comps.append(r.choice([f"{p} {m} {y} {c}", f"{p} {y} {m} {c}", f"{p} {m}, {y}, {c}"]))
            states.append(R.states_of(y, mats[m], c.split()[-1]))
        notes.append((r.choice([", ", ", and ", " , "]).join(comps), R.verdict(R.combine(states))))
    texts = [n for n, _ in notes]
    res, whole = shipped.classify(texts, explain=False), shipped.classify(texts, explain=False, by_part=False)
    right = sum(v["verdict"] == t for v, (_, t) in zip(res, notes))
    false_compliant = sum(v["verdict"] == "compliant" and t != "compliant" for v, (_, t) in zip(res, notes))
    assert right >= 397 and false_compliant <= 1, (right, false_compliant)
    assert right > sum(v["verdict"] == t for v, (_, t) in zip(whole, notes))
    v = shipped.classify(["fender 2019 forged steel excellent, and alternator forged steel 1984 good"])[0]
    assert v["verdict"] == "non_compliant" and v["facts"]["year"]["value"] == 1984
    # (read part by part unless the whole-note reading already found the violating year)
    assert v["facts"]["year"].get("part", "and alternator forged steel 1984 good") == "and alternator forged steel 1984 good"
    for note in ("PN 1987-22, built 2004, steel, good", "manufactured 2010, steel, good, job 1999",
                 "built 2004, steel, good condition, invoice 1993"):
        assert shipped.classify([note], explain=False)[0]["verdict"] == "compliant", note


# Workshop narrative written for this test only (no generator writes it), with the words that
# trip a reader up: negations, "old", "left", "factory", numbers.
_STORY = ["Car came in on a flatbed after the owner heard a knock.",
          "Put it on the ramp first thing and let the engine cool.",
          "Road test done with the service manager, no warning lamps.",
          "Parts arrived late from the depot so the job ran into the afternoon.",
          "Customer wants a call before any extra work is started.",
          "Torque wrench checked against the bench tester this morning.",
          "Washed the underbody to see where the leak was coming from.",
          "Two of the wheel bolts were tight and needed the breaker bar.",
          "Left a note for the night shift about the loan car.",
          "Battery charger stayed on while the diagnostics ran.",
          "Reset the service light and stamped the book.",
          "Brake fluid looked dark, advised a flush next visit.",
          "No leaks found under the car.", "Nothing else to report on the lift.",
          "Did not get to the wipers today, not enough time.", "Nobody answered the phone at lunch.",
          "The old loan car is not back yet.", "Never got the code reader to talk to the gateway.",
          "Left the keys with reception at six.", "Factory tool needed for the cover, borrowed one."]


def test_shipped_bundle_reads_the_facts_through_narrative_it_never_saw(shipped):
    """300 one-part records, 4 in 10 without one of their facts, each among 2-6 sentences of
    narrative: the verdict is right for >= 297 and no record without a fact is called
    compliant (measured: 300, 0; the whole-note reading alone, without the re-read of an
    undetermined note sentence by sentence (agent/classify._read_sentences): 298, 0)."""
    import random
    from agent import regulation as R
    from export.compliance.parts import PARTS
    r = random.Random(11)
    mats = {"aluminium": "aluminium", "steel": "steel", "cast iron": "iron", "plastic": "plastic",
            "carbon fibre": "carbon fiber"}
    notes = []
    for _ in range(300):
        y = r.choice([r.randint(1960, 1994), r.randint(1995, 2025), r.randint(1995, 2025)])
        m, c, p = r.choice(list(mats)), r.choice(["good", "new", "excellent", "fair", "poor"]), r.choice(PARTS)
        said = {"year": f"built {y}", "material": m, "condition": f"{c} condition"}
        gone = r.choice(R.ATTRIBUTES) if r.random() < 0.4 else None
        if gone:
            del said[gone]
        story = r.sample(_STORY, r.randint(2, 6))
        story.insert(r.randint(0, len(story)), f"{p.capitalize()}: " + ", ".join(said.values()) + ".")
        notes.append((" ".join(story), R.verdict(R.states_of(None if gone == "year" else y,
                                                            None if gone == "material" else mats[m],
                                                            None if gone == "condition" else c))))
    res = shipped.classify([n for n, _ in notes], explain=False)
    right = sum(v["verdict"] == t for v, (_, t) in zip(res, notes))
    false_compliant = [n for v, (n, t) in zip(res, notes) if v["verdict"] == "compliant" and t != "compliant"]
    assert right >= 297 and not false_compliant, (right, false_compliant)


def test_an_undetermined_note_is_read_again_without_its_narrative(shipped):
    """The re-read drops only sentences that state no fact alone, and never makes up a fact:
    a note that does not state its condition stays undetermined however it is cut."""
    note = ("Blower motor: dates to 2020; the material is alloy aluminium; overall condition pretty good. "
            "checked the recall database, nothing open for this chassis.")   # the whole reading: year not stated
    v = shipped.classify([note], explain=True)[0]
    assert v["verdict"] == "compliant", v
    assert "2020" in v["facts"]["year"]["why"], v
    gone = note.replace("; overall condition pretty good", "")
    for text in (gone, gone.replace(".", ";", 1)):
        v = shipped.classify([text])[0]
        assert v["verdict"] == "undetermined" and v["missing"] == ["condition"], (text, v)


def test_a_doubtful_fact_is_confirmed_in_its_own_clause_and_only_in_a_one_part_note(shipped):
    """A fact blurred by a clause the model never saw is found in its own clause; another
    part's clause never lends a fact, and a fact the note lacks stays missing
    (agent/classify._confirm_in_clauses)."""
    v = shipped.classify(["Condition excellent; the carbon fibre valve cover left the factory in 2017."])[0]
    assert v["verdict"] == "compliant" and v["facts"]["year"]["value"] == 2017, v
    assert {"carbon", "fibre"} & set(v["facts"]["material"]["why"]) and "excellent" in v["why"], v
    for text, missing in [("Condition excellent; the valve cover left the factory in 2017.", ["material"]),
                          ("Gearbox mount: 1998, steel, excellent; Transmission case: 1997, aluminium", ["condition"]),
                          ("CV joint aluminium 2024 good; Door panel: 2014, steel", ["condition"]),
                          ("Fender: 2021, carbon fibre, excellent\nHorn: aluminium, good", ["year"])]:
        v = shipped.classify([text])[0]
        assert v["verdict"] == "undetermined" and v["missing"] == missing, (text, v)


def test_a_fact_written_before_the_part_is_found_in_its_own_clause(shipped):
    """"Condition very good; the steel oil cooler rolled off the line in 2021.": a clause the
    model never saw after the condition left the condition not stated (p 0.6-0.8), while
    "Condition very good" alone complies at 0.99: a fact the model is not sure the note lacks
    is confirmed in its own clause (agent/classify._leans_complies). Wordings written for
    this test (the whole reading alone: 47 of 60); a note without its condition stays
    undetermined."""
    import random
    from export.compliance.parts import PARTS
    r = random.Random(31)
    stated = ["Condition {c}; the {m} {p} rolled off the line in {y}.", "Cond {c} - {m} {p}, shipped from the plant in {y}",
              "State: {c}; the {m} {p} was delivered new in {y}", "Condition {c}, the {p} is {m} and went into service in {y}",
              "{C} condition; the {m} {p} came out of the foundry in {y}"]
    lacking = ["{m} {p}, made {y}; condition not recorded", "the {m} {p} left the factory in {y}; photos on file",
               "Checked; the {m} {p} from {y}, torqued to spec", "{p} {m} {y}, cleaned and refitted"]
    def fill(t):
        c = r.choice(["good", "very good", "excellent", "like new", "as new", "new"])
        return t.format(c=c, C=c.capitalize(), m=r.choice(["steel", "aluminium", "stainless steel", "carbon fibre"]),
                        p=r.choice(PARTS), y=r.choice([1996, 2003, 2009, 2015, 2021]))
    notes = [fill(r.choice(stated)) for _ in range(60)]
    res = shipped.classify(notes, explain=False)
    assert sum(v["verdict"] == "compliant" for v in res) >= 57, [t for t, v in zip(notes, res) if v["verdict"] != "compliant"]
    v = shipped.classify(["Condition very good; the stainless steel oil cooler rolled off the line in 2021."])[0]
    assert v["verdict"] == "compliant" and "good" in v["facts"]["condition"]["why"], v
    notes = [fill(r.choice(lacking)) for _ in range(60)]
    res = shipped.classify(notes, explain=False)
    assert [(t, v["verdict"]) for t, v in zip(notes, res) if v["verdict"] != "undetermined"] == []
    assert all(v["missing"] == ["condition"] for v in res)


@pytest.mark.parametrize("text,verdict", [
    # what the part is not, then what it is: the part as it is now counts
    ("It's not carbon fiber, just plastic with a carbon look wrap. 2019, good.", "non_compliant"),
    ("Not carbon fibre but plastic with a carbon-look film, made 2017, excellent", "non_compliant"),
    ("Door handle: it's not chrome steel, just plastic with a chrome finish. 2020, very good.", "non_compliant"),
    ("Housing isn't aluminium - it's iron painted silver. 2015, like new", "non_compliant"),
    ("Isn't steel, just nylon plastic. 2018, excellent", "non_compliant"),
    # ... and a violating material that the note says the part is not
    ("isn't plastic, it's carbon fibre; 2015; good", "compliant"),
    ("Not cast iron, it is forged steel, 2011, excellent", "compliant"),
    ("Cover: steel, not plastic; built 2013; good", "compliant"),
    ("Made 2019, aluminium (not plastic), condition excellent", "compliant"),
    ("Wheel hub 2014, forged steel, good - not the plastic one listed in the old record", "compliant"),
    ("No rust, not cracked; steel, 2016, good", "compliant"),
])
def test_what_a_part_is_not_is_not_its_fact(shipped, text, verdict):
    """agent/classify._read_negated: the model read "not carbon fiber" as carbon fibre (the
    hand-written set's last false compliant); the clause of what the part is decides."""
    for explain in (True, False):
        v = shipped.classify([text], explain=explain)[0]
        assert v["verdict"] == verdict, (explain, v)
    if verdict == "non_compliant":
        assert v["facts"]["material"]["state"] == "violates", v


def test_new_bolts_are_not_the_parts_condition(shipped):
    """"refitted with new bolts": "new" describes what was used on the job, not the component,
    so a note without the part's condition stays undetermined (agent/classify._read_new_of_other;
    the model alone called 9 of these 10 compliant); "new" of the part itself still is its
    condition. Notes written for this test."""
    lacking = ["The aluminium valve cover was built in 2009; refitted with new screws.",
               "steel control arm 2014, fitted new bush inserts and torqued to spec",
               "Wheel hub forged steel 2018, new grease caps and new dust seals",
               "radiator aluminium 2011, flushed and filled with new antifreeze",
               "oil pan, aluminium, built 2015, new drain plug fitted",
               "Steel exhaust hanger from 2010, new rubber isolators fitted",
               "brake caliper aluminium 2019 - new slide pins and new boots",
               "door hinge steel 2017, greased, new hinge pins",
               "Aluminium intercooler 2012; new jubilee clips on both hoses",
               "stainless steel fuel rail, 2016, new injector seals fitted"]
    res = shipped.classify(lacking)
    assert [(t, v["verdict"]) for t, v in zip(lacking, res) if v["verdict"] == "compliant"] == []
    stated = ["New steel control arm fitted, made 2022", "wheel hub forged steel 2018, new",
              "turbocharger, new unit, steel housing, 2021", "Alternator aluminium 2020 brand new",
              "brake discs steel 2020 new", "new brake pads, steel backing, 2022, as new",
              "new steel shock absorbers fitted, made 2023, condition new"]
    res = shipped.classify(stated)
    assert [(t, v["verdict"]) for t, v in zip(stated, res) if v["verdict"] != "compliant"] == []


@pytest.mark.xfail(reason="the shipped model does not read 'new unit' after 'replaced' as the part's condition "
                          "(undetermined, the safe side)", strict=True)
def test_a_new_unit_after_replaced_is_the_parts_condition(shipped):
    assert shipped.classify(["turbocharger replaced, new unit, steel housing, 2021"])[0]["verdict"] == "compliant"


def test_a_component_under_its_own_heading_after_also_is_a_record_of_its_own(shipped):
    """"... Also ENGINE MOUNT: aluminium casting": a second component under a heading of its
    own, its record incomplete, is not lent the first one's year and condition (the whole
    reading did: compliant), whether or not the first is a whole record; a complete second
    record keeps the note compliant, and an "also" with no heading of its own continues the
    same record. Parts and wordings written for this test."""
    import random
    from export.compliance.parts import PARTS
    r = random.Random(23)
    heads = ["{p}: ", "[{p}] ", "{P}: ", "the {p}: "]
    def rec(p, facts):
        bits = {"year": f"built {r.choice([1998, 2004, 2011, 2019])}", "material": r.choice(["steel", "aluminium"]),
                "condition": r.choice(["good", "new", "excellent"])}
        return r.choice(heads).format(p=p, P=p.upper()) + ", ".join(bits[h] for h in facts)
    partial, whole = [], []
    for _ in range(40):
        a, b = r.sample(PARTS, 2)
        first = r.choice([["year", "material", "condition"], ["year", "condition"], ["year", "material"]])
        second = r.choice([["material"], ["condition"], ["material", "condition"], ["year", "material"]])
        partial.append(f"{rec(a, first)}. Also {rec(b, second)}")
        whole.append(f"{rec(a, ['year', 'material', 'condition'])}. Also {rec(b, ['year', 'material', 'condition'])}")
    res = shipped.classify(partial)
    assert not [(t, v["verdict"]) for t, v in zip(partial, res) if v["verdict"] == "compliant"]
    assert all(v["missing"] for v in res)
    res = shipped.classify(whole, explain=False)
    assert sum(v["verdict"] == "compliant" for v in res) >= 0.95 * len(whole), [
        t for t, v in zip(whole, res) if v["verdict"] != "compliant"][:3]
    v = shipped.classify(["Bracket built 2010, aluminium. Also in good condition."])[0]
    assert v["verdict"] == "compliant", v


def test_a_component_under_its_own_heading_in_a_sentence_of_its_own_is_a_record_of_its_own(shipped):
    """"Bracket: steel, excellent. Hinge: dated 2015.": two components, neither a whole record,
    read compliant by the whole reading; a sentence that opens with a heading of its own is
    another component (agent/classify._components), a field label ("Year:") is not, and a
    complete pair stays compliant. Parts and wordings written for this test."""
    import random
    from export.compliance.parts import PARTS
    r = random.Random(29)
    heads = ["{p}: ", "[{p}] ", "{P}: "]
    def rec(p, facts):
        bits = {"year": r.choice(["dated 2015", "built 2009", "from 2021"]), "material": r.choice(["steel", "aluminium"]),
                "condition": r.choice(["good", "excellent", "like new"])}
        return r.choice(heads).format(p=p, P=p.upper()) + ", ".join(bits[h] for h in facts) + "."
    partial, whole = [], []
    for _ in range(40):
        a, b = r.sample(PARTS, 2)
        first = r.choice([["material", "condition"], ["year", "condition"], ["year", "material"]])
        second = r.choice([["year"], ["material"], ["condition"], ["year", "material"]])
        partial.append(f"{rec(a, first)} {rec(b, second)}")
        whole.append(f"{rec(a, ['year', 'material', 'condition'])} {rec(b, ['year', 'material', 'condition'])}")
    res = shipped.classify(partial)
    assert [(t, v["verdict"]) for t, v in zip(partial, res) if v["verdict"] == "compliant"] == []
    res = shipped.classify(whole, explain=False)
    assert sum(v["verdict"] == "compliant" for v in res) >= 0.95 * len(whole), [
        t for t, v in zip(whole, res) if v["verdict"] != "compliant"][:3]
    for text in ["Part: wiper arm. Year: 2015. Material: steel. Condition: good.",
                 "Water pump. Built: 2012. Mat: aluminium. Cond: excellent."]:
        v = shipped.classify([text])[0]
        assert v["verdict"] == "compliant", (text, v)


def test_a_doubtful_fact_is_confirmed_in_the_sentences_of_one_record(shipped):
    """A record written over two sentences ("2011 per the stamp on the flange. Carbon fibre
    housing, excellent.") is one record for _confirm_in_clauses: the whole reading was unsure of
    a fact its own clause states; a second component under its own heading is not."""
    for text in ["2011 per the stamp on the flange. Carbon fibre housing, excellent.",
                 "throttle body dated 2018 - matches the build sheet. carbon fibre throughout, looks very good"]:
        v = shipped.classify([text])[0]
        assert v["verdict"] == "compliant", (text, v)
    for text in ["2011 per the stamp on the flange. Carbon fibre housing, cleaned.",
                 "Throttle body dated 2018. Idle valve: carbon fibre, very good."]:
        v = shipped.classify([text])[0]
        assert v["verdict"] == "undetermined", (text, v)


def test_a_note_is_compliant_only_if_every_part_in_it_is(shipped):
    """Parts joined by "also" or written as sentences: each whole compliant record makes the
    note compliant only together with the others; one part without its year leaves the
    note undetermined, one violating part makes it non-compliant (agent/classify._read_sentences)."""
    one = "[tow bar] state: good; body is alu casting; made late 2021 also [driveshaft] "
    cases = [(one + "cast in 2017; carbon fibre; graded good", "compliant", []),
             (one + "carbon fibre; graded good", "undetermined", ["year"]),
             ("[hub] steel, good, 2015 also [bracket] plastic, good, 2015", "non_compliant", []),
             ("Wiper arm: steel, built 2016, good. The old washer pump was plastic. "
              "New washer pump aluminium, 2018, good.", "compliant", [])]
    for text, verdict, missing in cases:
        v = shipped.classify([text])[0]
        assert v["verdict"] == verdict and v["missing"] == missing, (text, v)


def test_shipped_bundle_several_components_year_of_the_violating_one(shipped):
    v = shipped.classify(["Alternator: 2010, aluminium, good. Bracket: 1985, cast iron, poor."])[0]
    assert v["facts"]["year"]["state"] == "violates" and v["facts"]["year"]["value"] == 1985
    assert v["facts"]["year"]["where"].startswith("Bracket")


def test_shipped_bundle_reads_no_year_from_a_reference_number(shipped):
    """A year-like number behind a reference label, before a unit or with a code suffix is no
    manufacture year (tokenizer "references"): a note with only such a number states no year
    and is never compliant; beside a real year, the real one is the value. Labels, parts and
    wordings written for this test."""
    import random
    from export.compliance.parts import PARTS
    assert shipped.tokenizer.references is not None
    r = random.Random(5)
    refs = ["invoice {y}", "PO {y}", "VIN {y}", "tkt {y}", "S/N {y}", "work order {y}", "part # {y}", "claim #{y}",
            "odometer {y} km", "job {y}-0042", "casting no. {y}", "batch {y}", "{y} miles", "ref {y}/17", "code {y}-B"]
    undated, dated = [], []
    for k in range(60):
        ref = r.choice(refs).format(y=r.choice([1987, 1993, 2001, 2016, 2024]))
        part, mat, cond = r.choice(PARTS), r.choice(["steel", "aluminium", "carbon fibre"]), r.choice(["good", "new"])
        undated.append(r.choice([f"{part}: {mat}, {cond}, {ref}", f"{part} {ref} {mat} {cond}",
                                 f"{ref} - {part}, {mat}, condition {cond}"]))
        y = r.choice([1979, 1990, 2005, 2012, 2021])
        dated.append((f"{part}: {ref}, made of {mat}, built {y}, {cond} condition", y))
    res = shipped.classify(undated, explain=False)
    assert not [(t, v["verdict"]) for t, v in zip(undated, res) if v["verdict"] == "compliant"]
    assert sum("year" in v["missing"] for v in res) == len(undated)
    # read in pieces too (a label and its number in different clauses; the readings leave no
    # trace of how), also beside a dated part — measured: 1 of 60 called compliant, the part
    # "spare wheel carrier invoice 2001 steel good", which the model reads alone as stating
    # no material, so rule 1 does not see a part without its year
    told = shipped.classify(undated + [f"{t}. Also fender: built 2011, steel, good" for t in undated])
    assert not [v for v in told[:len(undated)] if v["verdict"] == "compliant"] and "\u2063" not in json.dumps(told)
    assert sum(v["verdict"] == "compliant" for v in told[len(undated):]) <= 1
    res = shipped.classify([t for t, _ in dated], explain=False)
    right = sum(v["facts"]["year"]["value"] == y for v, (_, y) in zip(res, dated))
    assert right >= 0.95 * len(dated), [(t, v["facts"]["year"]) for v, (t, y) in zip(res, dated)
                                         if v["facts"]["year"]["value"] != y][:5]


def test_shipped_bundle_reads_no_year_from_a_number_that_cannot_be_one(shipped):
    """A year-like number past a few model years ahead (a claim, stock or label number) is no
    manufacture year: the year fact is not stated, the note never compliant for it."""
    v = shipped.classify(["Bracket steel, good, label code 2075-A"])[0]
    assert v["facts"]["year"]["state"] == "not_stated" and v["facts"]["year"]["value"] is None, v
    assert v["verdict"] == "undetermined" and "year" in v["missing"], v
    v = shipped.classify(["Bracket steel, good, built 2012, label code 2075-A"])[0]
    assert v["facts"]["year"]["value"] == 2012, v


def test_a_fact_the_model_is_not_sure_of_is_not_stated_and_says_so():
    """regulation.read_fact above the model: with the bar raised past 1, no head can comply,
    so nothing is compliant; the leaning is reported as `unsure` and a violation still counts."""
    from agent import regulation as R
    clf = ComplianceClassifier.from_bundle(verify_bundle(SHIPPED))
    assert clf.min_p_complies == verify_bundle(SHIPPED).manifest["decision"]["min_p_complies"] == R.MIN_P_COMPLIES
    clf.min_p_complies = 1.01
    ok, bad = clf.classify(["Alternator, built 2010, aluminium, good", "Bracket, built 1985, steel, good"])
    assert ok["verdict"] == "undetermined" and ok["missing"] == ["year", "material", "condition"], ok
    assert all(ok["facts"][h]["unsure"]["state"] == "complies" for h in R.ATTRIBUTES), ok
    assert all(not ok["facts"][h]["why"] for h in R.ATTRIBUTES)
    assert bad["verdict"] == "non_compliant" and bad["facts"]["year"]["state"] == "violates", bad
    assert "unsure" not in bad["facts"]["year"]


def _cli(args, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "agent.cli", "--log-level", "WARNING", *args], input=stdin,
                          capture_output=True, cwd=ROOT, timeout=60)


def test_classify_cli_handles_malformed_lines(tmp_path):
    lines = [b"Manufactured in 1985 made of steel in fair condition",
             b"",
             b"x" * 2001,
             b"made of st\xe9el in good condition 2010",               # latin-1, not UTF-8
             json.dumps({"id": 7, "text": "Good condition carbon fiber component manufactured in 2010"}).encode(),
             json.dumps({"id": "b", "text": 5}).encode(),
             b'{"material": "iron", "year": 2015, "condition": "good"}',  # a JSON-looking plain note
             b"   ",
             b'{"id": 9}']
    f = tmp_path / "notes.txt"
    f.write_bytes(b"\n".join(lines) + b"\n")
    r = _cli(["classify", str(f)])
    assert r.returncode == 1, r.stderr
    out = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert len(out) == len(lines)
    assert out[0]["compliant"] is False and "1985" in out[0]["why"] and out[0]["verdict"] == "non_compliant"
    assert out[0]["facts"]["year"] == {**out[0]["facts"]["year"], "state": "violates", "value": 1985}
    assert out[0]["missing"] == []
    assert [("error" in o) for o in out] == [False, True, True, True, False, True, False, True, True]
    assert out[8]["id"] == 9 and out[8]["line"] == 9
    assert "empty" in out[1]["error"] and "2000" in out[2]["error"] and "UTF-8" in out[3]["error"]
    assert out[4] == {**out[4], "id": 7, "compliant": True}
    assert out[5]["id"] == "b" and out[6]["compliant"] is False
    # all-good input from stdin -> exit 0
    r = _cli(["classify", "-"], stdin=b"mat: iron / yr 1999 / cond good\nsteel 2012 good\nsteel, good condition\n")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3
    und = json.loads(r.stdout.splitlines()[2])
    assert und["verdict"] == "undetermined" and und["compliant"] is None and und["missing"] == ["year"]


def test_tampered_bundle_is_refused(tmp_path):
    for victim in ("model.onnx", "manifest.json"):
        b = tmp_path / victim
        shutil.copytree(SHIPPED, b)
        data = bytearray((b / victim).read_bytes())
        if victim == "manifest.json":
            data = data.replace(b'"<unk>"', b'"<unK>"', 1)
        else:
            data[len(data) // 2] ^= 0x01
        (b / victim).write_bytes(bytes(data))
        with pytest.raises(BundleError):
            verify_bundle(b)
        r = _cli(["classify", "--bundle", str(b), "-"], stdin=b"steel 2012 good\n")
        assert r.returncode == 2 and r.stdout == b"" and b"refused" in r.stderr


def test_score_compliance_streams_specs_to_reports(tmp_path):
    from export.cli import main as export_main
    data = tmp_path / "data"
    assert export_main(["data", "compliance", "--notes", "10", "--vehicles", "60", "--seed", "5",
                        "--out", str(data)]) == 0
    spec = data / "specs.jsonl"
    with open(spec, "ab") as fh:                 # two bad lines: counted, the rest still scored
        fh.write(b"{not json\n" + json.dumps({"vin": "X", "components": []}).encode() + b"\n")
    rep = tmp_path / "report"
    rc = export_main(["score", "compliance", str(spec), "--out", str(rep), "--chunk", "64", "--no-progress"])
    assert rc == 1
    truth = [json.loads(x) for x in (data / "specs_truth.jsonl").read_text().splitlines()]
    got = [json.loads(x) for x in (rep / "vehicles.jsonl").read_text().splitlines()]
    assert [g["vin"] for g in got] == [t["vin"] for t in truth]
    right = total = 0
    for g, t in zip(got, truth):
        assert [v["component"] for v in g["verdicts"]] == [c["component"] for c in t["components"]]
        for v, c in zip(g["verdicts"], t["components"]):
            right += v["compliant"] == (c["label"] == 0)
            total += 1
        assert g["noncompliant"] == len(g["noncompliant_components"])
    assert right / total >= 0.95          # specs include the held-out styles; reverse_sentence is weak (README)
    import csv
    rows = list(csv.DictReader(open(rep / "summary.csv")))
    assert len(rows) == len(got) and rows[0]["vin"] == got[0]["vin"]
    assert int(rows[0]["noncompliant"]) == got[0]["noncompliant"]
    rej = [json.loads(x) for x in (rep / "rejected.jsonl").read_text().splitlines()]
    assert sorted(r["reason"] for r in rej) == ["bad_document", "bad_json"]


def test_same_seed_same_bundle_bytes(tmp_path):
    """`--seed` reproduces the model: identical weights AND identical .onnx bytes (tf2onnx's
    counter-based names are canonicalised), identical vocabulary."""
    from export.compliance.train import TrainConfig, run_training
    outs = []
    for run in ("a", "b"):
        cfg = TrainConfig(out=str(tmp_path / run), artifacts=str(tmp_path / f"art{run}"), notes=1200,
                          heldout_notes=60, max_epochs=1, seed=11, threads=1, units=16, emb=8, mlflow=False,
                          handwritten=None)
        run_training(cfg)
        b = verify_bundle(tmp_path / run)
        outs.append((b.model_bytes, b.manifest["preprocessing"], (tmp_path / f"art{run}" / "model_fp32.onnx").read_bytes()))
    assert outs[0][0] == outs[1][0] and outs[0][2] == outs[1][2]
    assert outs[0][1] == outs[1][1]


def test_score_compliance_reports_undetermined_per_vehicle(tmp_path):
    from export.cli import main as export_main
    spec = tmp_path / "spec.jsonl"
    docs = [{"vin": "CAR-OK", "components": [{"component": "horn", "note": "steel, 2012, good"}]},
            {"vin": "CAR-INCOMPLETE", "components": [{"component": "horn", "note": "steel, 2012, good"},
                                                     {"component": "water pump", "note": "aluminium, good condition"}]},
            {"vin": "CAR-BAD", "components": [{"component": "water pump", "note": "aluminium, good condition"},
                                              {"component": "brake drum", "note": "cast iron 2001 good"}]}]
    spec.write_text("".join(json.dumps(d) + "\n" for d in docs))
    rep = tmp_path / "report"
    assert export_main(["score", "compliance", str(spec), "--out", str(rep), "--no-progress"]) == 0
    got = {g["vin"]: g for g in map(json.loads, (rep / "vehicles.jsonl").read_text().splitlines())}
    assert [got[v]["verdict"] for v in ("CAR-OK", "CAR-INCOMPLETE", "CAR-BAD")] == [
        "compliant", "undetermined", "non_compliant"]
    assert [got[v]["compliant"] for v in ("CAR-OK", "CAR-INCOMPLETE", "CAR-BAD")] == [True, None, False]
    inc = got["CAR-INCOMPLETE"]
    assert inc["undetermined"] == 1 and inc["noncompliant"] == 0
    assert inc["undetermined_components"][0]["component"] == "water pump"
    assert inc["undetermined_components"][0]["missing"] == ["year"]
    assert got["CAR-BAD"]["undetermined"] == 1 and got["CAR-BAD"]["noncompliant"] == 1
    import csv
    rows = {r["vin"]: r for r in csv.DictReader(open(rep / "summary.csv"))}
    assert rows["CAR-INCOMPLETE"]["compliant"] == "null" and rows["CAR-INCOMPLETE"]["undetermined"] == "1"
    assert rows["CAR-INCOMPLETE"]["undetermined_components"] == "water pump"


def _assert_verdicts(shipped, cases, explains=(False, True)):
    """Each (note, verdict) of cases is read so, with and without `why` (every miss listed)."""
    for explain in explains:
        res = shipped.classify([t for t, _ in cases], explain=explain)
        assert [(t, want, v["verdict"]) for (t, want), v in zip(cases, res) if v["verdict"] != want] == [], explain


def test_the_part_as_it_is_now_after_a_swap(shipped):
    """agent/classify._read_now: the former part's words of a replacement wording decide no
    fact, either way ("now nylon plastic after the swap from stainless steel" had read
    compliant; "now steel after the swap from pa6 plastic" in a longer note non-compliant).
    120 notes written for this test, a third of them with the part as it is now violating."""
    r = random.Random(5)
    parts = ["clutch plate", "oil pan", "wheel hub", "battery tray", "tow bar", "sump guard", "valve cover",
             "control arm", "skid plate", "door hinge", "fuel rail", "heat shield"]
    good_m = ["steel", "aluminium", "carbon fibre", "forged steel", "stainless steel", "alu casting"]
    bad_m = ["pa6 plastic", "cast iron", "nylon plastic", "grey cast iron", "plastic", "malleable iron"]
    conds = ["in good order overall", "looks excellent", "good condition", "condition very good", "rated excellent"]
    swaps = ["now {m} after the swap from {om}", "changed out the {om} one for a {m} one",
             "swapped the {om} {p} for a {m} one", "{m} fitted in place of the {om} one", "{m} instead of {om}"]
    notes = []
    for k in range(120):
        p, bad = r.choice(parts), k % 3 == 0
        m, om = (r.choice(bad_m), r.choice(good_m)) if bad else (r.choice(good_m), r.choice(bad_m))
        cl = [f"stamped {r.randint(1996, 2024)}", r.choice(conds), r.choice(swaps).format(m=m, om=om, p=p)]
        r.shuffle(cl)
        notes.append((f"{p}: " + r.choice(["; ", ", ", " / "]).join(cl), "non_compliant" if bad else "compliant"))
    _assert_verdicts(shipped, notes)
    v = shipped.classify(["wheel hub: condition very good, stamped 2021, now nylon plastic after the swap "
                          "from stainless steel"])[0]
    assert v["verdict"] == "non_compliant" and v["facts"]["material"]["state"] == "violates", v
    # the former part's words had hidden the year from the model: read without them
    v = shipped.classify(["tow bar: rated excellent, stamped 2006, swapped the malleable iron tow bar for a "
                          "stainless steel one"])[0]
    assert v["verdict"] == "compliant" and v["facts"]["year"]["value"] == 2006, v
    # "removed X, fitted Y instead": X is the part that was, and the year after "instead" is read
    for t, want in [("Removed the plastic splash guard, fitted an aluminium skid plate instead (2022, new).", "compliant"),
                    ("Took out the cast iron manifold, put in a stainless steel one instead (2019, very good).", "compliant"),
                    ("Scrapped the plastic cover; fitted a carbon fibre one instead. 2020. Excellent.", "compliant"),
                    ("removed the old 1980 pump and installed a 2012 aluminium one instead, condition good", "compliant"),
                    ("Removed the aluminium bracket, fitted an iron one instead, 2012, good", "non_compliant"),
                    ("Removed the plastic splash guard, fitted an aluminium skid plate instead (2022, poor).", "non_compliant"),
                    ("Removed the plastic guard, fitted a steel one instead, good condition", "undetermined")]:
        assert shipped.classify([t])[0]["verdict"] == want, t
    # ... but a part swapped with nothing said of the new one's material is not compliant
    v = shipped.classify(["tow bar: rated excellent, stamped 2006, swapped the malleable iron tow bar for a new one"])[0]
    assert v["verdict"] != "compliant", v


def test_each_part_record_is_read_in_full_and_a_part_without_a_fact_still_counts(shipped):
    """agent/classify._records_in_full: two parts' records after workshop narrative, each a
    whole record the model reads in pieces ("looks new again" alone complies), make a
    compliant note (before: 19 of these 80 notes undetermined); where one part lacks a fact
    the note stays undetermined. Notes written for this test."""
    r = random.Random(11)
    parts = ["sunroof frame", "flywheel", "brake caliper", "front bumper", "timing cover", "radiator", "sump guard",
             "cylinder head", "leaf spring", "intake manifold"]
    fill = ["Fluids topped up as a courtesy.", "Workshop was busy so the job was split over two days.",
            "Customer asked for the old parts back.", "Rang the owner before starting.", "Booked in for the afternoon slot."]
    conds = ["looks new again", "i'd call it new again", "graded factory new", "looks like new", "good overall", "rated excellent"]
    mats = ["chromoly steel housing", "alu casting", "body is aluminium", "carbon fibre housing", "spring steel"]
    years = ["came off the line in {y}", "build date {y}", "dates to {y}", "cast in early {y}"]

    def rec(p, drop=None):
        cl = {"c": r.choice(conds), "m": r.choice(mats), "y": r.choice(years).format(y=r.randint(1998, 2024))}
        cl.pop(drop, None)
        cl = list(cl.values())
        r.shuffle(cl)
        return r.choice([f"[{p}] ", f"Re {p} - ", f"{p.upper()}: "]) + r.choice([" / ", "; ", ", "]).join(cl)
    notes = []
    for k in range(80):
        a, b = r.sample(parts, 2)
        lack = k % 4 == 0
        body = rec(a) + (" Also " if r.random() < 0.5 else ". ") + rec(b, drop=r.choice("cmy") if lack else None)
        notes.append((" ".join(r.sample(fill, r.randint(1, 3))) + " " + body, "undetermined" if lack else "compliant"))
    res = shipped.classify([t for t, _ in notes], explain=False)
    wrong = [(t, want, v["verdict"]) for (t, want), v in zip(notes, res) if v["verdict"] != want]
    assert not [w for w in wrong if w[1] != "compliant" and w[2] == "compliant"], wrong     # no false compliant
    assert len(wrong) <= 2, wrong                                                          # measured: 1
    # a fact written down as unknown is a record of its own: it is not read away as narrative
    for t in ("Fluids topped up as a courtesy. [oil pan] alu casting; build date 2012. Condition n/a.",
              "[oil pan] alu casting; build date 2012. Condition n/a. Rang the owner before starting."):
        v = shipped.classify([t])[0]
        assert v["verdict"] == "undetermined" and v["missing"] == ["condition"], (t, v)


def test_a_grade_code_after_a_condition_word_is_read(shipped):
    """agent/classify._GRADE_CODE (through _read_slips): a form's grade code after a condition
    word ("cond: F", "condition P.") is the grade (these read compliant or undetermined
    before); "condition n/a" is no grade, and "cond good" is as written."""
    cases = [("Hub steel 2015 cond: F", "non_compliant"),
             ("Hub steel 2015 condition P", "non_compliant"),
             ("Hub steel 2015 condition F.", "non_compliant"),
             ("Hub steel 2015, grade VG", "compliant"),
             ("Hub steel 2015, condition n/a", "undetermined"),
             ("Hub steel 2015, cond good", "compliant"),
             # two-letter short forms after a condition word ("cond. pr" read compliant before)
             ("Brake line steel 2019 cond. pr", "non_compliant"),
             ("Brake line steel 2019 cond fr", "non_compliant"),
             ("Brake line steel 2019 cond gd", "compliant"),
             # a workshop's short form of a fact word on its own (read undetermined before)
             ("Brake line stl 2019 good", "compliant"),
             ("Brake line plst 2019 good", "non_compliant"),
             ("Brake line alum 2019 exlnt", "compliant")]
    _assert_verdicts(shipped, cases)
    f = shipped.classify(["Hub steel 2015 cond: F"])[0]["facts"]["condition"]
    assert (f["state"], f["why"]) == ("violates", ["F"])


def test_a_three_letter_slip_of_a_short_fact_word_is_read(shipped):
    """agent/classify._read_slips: the tokenizer's fuzzy lookup starts at four letters, so
    "god", "irn", "por" were <unk> and the fact not stated (the hand-written typos at
    76.9 %). A slip is read as its fact word, both ways; `why` quotes the note as written;
    a word that is a word ("as far as", "goo", "ion") is not taken for a slip."""
    cases = [("wiper arm steel 2015 god", "compliant", "condition", "god"),
             ("Wiper arm: steel, 2015, condition GOD", "compliant", "condition", "GOD"),
             ("door hinge aluminium 2012 cond por", "non_compliant", "condition", "por"),
             ("door hinge aluminium 2012 condition fai", "non_compliant", "condition", "fai"),
             ("cast irn bracket, 2008, good", "non_compliant", "material", "irn"),
             ("tow hook forged steel 2019 nwe", "compliant", "condition", "nwe")]
    for explain in (False, True):
        res = shipped.classify([t for t, *_ in cases], explain=explain)
        for (t, want, h, slip), v in zip(cases, res):
            assert v["verdict"] == want, (t, v)
            if explain:
                assert v["facts"][h]["why"] == [slip], (t, v["facts"][h])
    words = ["oil filter housing, aluminium, manufactured 1996, good as far as I can tell",
             "intake pipe steel 2014, covered in goo", "ion sensor steel 2011, condition not recorded"]
    for t, v in zip(words, shipped.classify(words)):
        assert v["verdict"] == ("compliant" if "good" in t else "undetermined"), (t, v)


def test_the_former_parts_facts_are_not_lent_to_the_part_as_it_is_now(shipped):
    """agent/classify._read_now: a year or material only the former part's words hold ("swapped
    the 2015 aluminium bracket for a used one, good") is not the part's: the model had lent it
    to the part as it is now (compliant). Where the new part's own fact is written, it counts.
    Notes written for this test: half of them state the new part's fact."""
    r = random.Random(23)
    parts = ["bracket", "housing", "guard", "cover", "mount", "pump", "manifold", "tray"]
    good_m = ["aluminium", "steel", "carbon fibre", "stainless steel"]
    forms = ["swapped the {old} {p} for a {new} one", "the {old} {p} was replaced with a {new} one",
             "changed out the {old} {p} for a {new} one", "{p}: {new} one fitted (was {old})",
             "removed the {old} {p}, fitted a {new} one instead"]
    notes = []
    for k in range(100):
        p, form, lend = r.choice(parts), r.choice(forms), r.choice(["year", "material"])
        stated = k % 2 == 0
        y_old, y_new = r.randint(1996, 2015), r.randint(2016, 2024)
        m_old, m_new = r.choice(good_m), r.choice(good_m)
        if lend == "year":
            old, new = f"{y_old} {m_old}", (f"{y_new} {m_new}" if stated else m_new)
        else:
            old, new = f"{m_old}", (f"{m_new}" if stated else r.choice(["used", "second-hand", "reconditioned"]))
        rest = [r.choice(["good", "condition very good", "excellent"])] + ([f"{y_new}"] if lend == "material" else [])
        notes.append((", ".join([form.format(old=old, new=new, p=p)] + rest), "compliant" if stated else "undetermined"))
    _assert_verdicts(shipped, notes)                        # (before: 36 of these 100 called compliant)


def test_a_fact_only_a_negation_states_is_not_stated(shipped):
    """agent/classify._read_only_negated: the model reads the words and not the "not" ("not
    steel": material complies at 0.97; "not in good condition": condition complies), so a
    one-sentence note whose fact only a negated clause states is undetermined; what the part
    is, written beside what it is not, still counts (the issue's "aluminium, not plastic as
    the old record said")."""
    cases = [("Heat shield, 2014, good, not steel", "undetermined", "material"),
             ("Heat shield, 2014, good, not plastic", "undetermined", "material"),
             ("heat shield steel 2014, it is not in good condition", "undetermined", "condition"),
             ("Bracket: not made in 2014, steel, good", "undetermined", "year"),
             ("Heat shield, 2014, good, not plastic, aluminium", "compliant", None),
             ("Heat shield, aluminium not steel, 2014, good", "compliant", None),
             ("aluminium, not plastic as the old record said, 2012, good", "compliant", None),
             ("Oil pan: aluminium (not iron), 2015, good", "compliant", None),
             ("Bracket, steel, good condition, not from 1990 but 2012", "compliant", None),
             ("It's not carbon fiber, just plastic with a carbon look wrap. 2019, good.", "non_compliant", None)]
    for explain in (False, True):
        for (t, want, missing), v in zip(cases, shipped.classify([t for t, *_ in cases], explain=explain)):
            assert v["verdict"] == want, (t, v)
            assert missing is None or v["missing"] == [missing], (t, v["missing"])


def test_a_year_that_dates_an_event_is_no_manufacture_year(shipped):
    """agent/classify._read_event_years: a note whose only year-like numbers date what happened
    to the car ("first registered 2014", "last serviced in 2014", "warranty expired 1992") or
    sit inside a code ("VIN WDB1994A123")
    states no manufacture year, either way (these read compliant or non-compliant before);
    beside a manufacture year, or with a manufacture word at the number, they change nothing."""
    cases = [("Heat shield, steel, good. Vehicle first registered 2014.", "undetermined"),
             ("Heat shield, steel, good. Last serviced in 2014.", "undetermined"),
             ("Heat shield, steel, good. Warranty expired 2014.", "undetermined"),
             ("Heat shield, steel, good. Owned since 2014.", "undetermined"),
             ("Heat shield, steel, good; MOT 2014", "undetermined"),
             ("Bracket steel good. Vehicle first registered 1990.", "undetermined"),
             ("Bracket steel good, warranty expired 1992", "undetermined"),
             ("Heat shield, steel, good, built 2014. Last serviced in 2019.", "compliant"),
             ("Bracket steel good, built 1990, last serviced 2019", "non_compliant"),
             ("Heat shield, steel, good, 2014. Previous visit 2019.", "compliant"),
             ("Heat shield, steel, good; last MOT 2014; made 2011", "compliant"),
             ("Heat shield, steel, good. Registered 2014, part dated 2012.", "compliant"),
             ("spark plug, very good on inspection - warranty no 2026 - 2015 vintage - sheet steel", "compliant"),
             ("Bracket steel good, came in 2014", "undetermined"),
             ("Bracket steel good, came off the line in 2014", "compliant"),
             ("Bracket steel good, VIN WDB1994A123", "undetermined"),
             ("MY2019 bracket, steel, good", "compliant"),
             ("Bracket steel good, VIN WDB1994A123, built 2016", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_year_in_a_phone_number_is_no_manufacture_year(shipped):
    """agent/classify._in_phone_number (through _read_event_years): year-like digits that are
    one group of a phone number ("customer phone 2012 555", "call back on 0161 2012 443")
    state no manufacture year (each read compliant before); a year beside digit groups that
    are no phone number (a date, a mileage, a count, a range of years) is still a year."""
    cases = [("Tow bar steel good, customer phone 2012 555.", "undetermined"),
             ("Tow bar steel good, customer phone 555 2012.", "undetermined"),
             ("Tow bar steel good, call back on 0161 2012 443.", "undetermined"),
             ("Tow bar steel good, contact number 07700 2014 22.", "undetermined"),
             ("Tow bar steel good, ph: +44 161 2012 443", "undetermined"),
             ("Tow bar steel good, 555 2013 4471 (owner)", "undetermined"),
             ("tow bar, good, steel; mobile no 1993 4471", "undetermined"),
             ("Tow bar steel 2016 good, customer phone 2012 555.", "compliant"),
             ("Tow bar steel 1990 good, customer phone 2012 555.", "non_compliant"),
             ("Door hinge steel 2004 120000 km good.", "compliant"),
             ("Door hinge steel made 12 03 1994, good.", "non_compliant"),
             ("Door hinge steel made 1994-03-12, good.", "non_compliant"),
             ("Door hinge steel 1990 2 owners good.", "non_compliant"),
             ("Door hinge steel 2012 good, 555 units in stock.", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_year_of_the_job_an_amount_or_a_place_is_no_manufacture_year(shipped):
    """agent/classify._read_event_years with _EVENT_CUE's job events and _no_year_at's amounts:
    the year right after what was done on a job ("fitted 2011", "checked on 12/03/2011",
    "date of inspection 2011-03-12"), a price, a weight, a bay or a postcode states no
    manufacture year (each read compliant before); a year a part was made in, written beside
    them ("1990, good, inspected 2019" read 2019 before), or right after a separator the
    generator writes ("very good on inspection - 1963"), still counts."""
    cases = [("Brake caliper aluminium, good, fitted 2011.", "undetermined"),
             ("Brake caliper aluminium, good, replaced in 2011.", "undetermined"),
             ("Brake caliper aluminium good, inspected 2011.", "undetermined"),
             ("Brake caliper aluminium good, checked on 12/03/2011.", "undetermined"),
             ("Brake caliper aluminium good, date of inspection 2011-03-12.", "undetermined"),
             ("Brake caliper aluminium good; to be replaced by 2027.", "undetermined"),
             ("Brake caliper aluminium good, price 2011 EUR.", "undetermined"),
             ("Brake caliper aluminium good, cost $2011.", "undetermined"),
             ("Brake caliper aluminium good, \u00a32011 quoted.", "undetermined"),
             ("Brake caliper aluminium good, weight 2011 g.", "undetermined"),
             ("Brake caliper aluminium good, bay 2011.", "undetermined"),
             ("Brake caliper aluminium good, postcode 1990.", "undetermined"),
             ("Brake caliper aluminium, built 2011, good condition. Fitted 2015.", "compliant"),
             ("Brake caliper, aluminium, 1990, good, inspected 2019.", "non_compliant"),
             ("Brake caliper, aluminium, 2011, good, inspected 1990.", "compliant"),
             ("Brake caliper aluminium good, made 1990, fitted 2015.", "non_compliant"),
             ("Brake caliper aluminium good, 2011, price $120.", "compliant"),
             ("Control arm steel very good on inspection - 1963 -", "non_compliant"),
             ("Control arm steel, replaced with a 2011 unit, good", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_hearsay_grade_and_a_corrected_negation(shipped):
    """agent/classify._HEDGED, _NEGATED and _NEGATION_TURN: "reportedly good", "condition good
    (unverified)", "either steel or plastic", "2012? or 1992?" are no record of the fact;
    "far from good", "hardly good" say what the part is not; "not aluminium, actually
    plastic" says what it is (each read compliant before)."""
    cases = [("Brake caliper 2011 aluminium, reportedly good.", "undetermined"),
             ("Brake caliper 2011 aluminium, condition good (unverified)", "undetermined"),
             ("Brake caliper 2011 aluminium, the owner reckons it is in good condition", "undetermined"),
             ("Brake caliper aluminium 2011, good, not aluminium actually plastic.", "non_compliant"),
             ("Brake caliper aluminium 2011, good. Reportedly the pads were changed.", "compliant"),
             ("Exhaust bracket 2012 good, material either steel or plastic.", "undetermined"),
             ("Exhaust bracket 2012 good, steel or iron, can't tell.", "undetermined"),
             ("Exhaust bracket steel, good, 2012? or 1992?", "undetermined"),
             ("Exhaust bracket 2012, steel, far from good.", "undetermined"),
             ("Exhaust bracket 2012, steel, less than good.", "undetermined"),
             ("Exhaust bracket 2012, steel, hardly good.", "undetermined"),
             ("Exhaust bracket 2012, steel, good. Hardly any wear on the pads.", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_decade_or_a_bound_is_no_exact_year(shipped):
    """agent/classify._read_year_range: a decade or a bound in place of a year says of the rule
    what the range says: all of it before 1995 violates ("pre-1995", "early 1990s", "made
    prior to 1993"), none of it complies ("late 1990s", "2010 or later"), else the year is not
    stated ("from the 1990s", "made before 2014": "pre-1995" read compliant before, "1990s"
    non-compliant); a year beside a bound on something else is still a year."""
    cases = [("Oil pan steel, good, pre-1995.", "non_compliant"),
             ("Oil pan steel, good, made prior to 1993.", "non_compliant"),
             ("Oil pan steel, good, early 1990s.", "non_compliant"),
             ("Oil pan steel, good, from the 1980s.", "non_compliant"),
             ("Oil pan steel, good, late 1990s.", "compliant"),
             ("Oil pan steel, good, 2010 or later.", "compliant"),
             ("Oil pan steel, good, built after 2010.", "compliant"),
             ("Oil pan steel, good, from the 1990s.", "undetermined"),
             ("Oil pan steel, good, mid-1990s.", "undetermined"),
             ("Oil pan steel, good, made before 2014.", "undetermined"),
             ("Oil pan steel, good, made 2014 or earlier.", "undetermined"),
             ("Oil pan steel, good, built after 1990.", "undetermined"),
             ("Oil pan steel, good, made 2014, serviced after 2016.", "compliant"),
             ("Oil pan steel 2014 good. Before 2014 it was fitted to another car.", "compliant")]
    _assert_verdicts(shipped, cases)
    f = shipped.classify(["Oil pan steel, good, pre-1995."])[0]["facts"]["year"]
    assert (f["state"], f["value"], f["range"]) == ("violates", None, [None, 1994])


def test_a_short_clause_of_what_the_part_is_now_or_a_correction_decides(shipped):
    """agent/classify._read_said_now: "aluminium (was), now plastic", "Now plastic (aluminium
    before)", "cast iron now, aluminium one cracked", "(typo, should read 1990)" read compliant
    (the model took the former value); the clause of what the part is now, read alone, says
    what it violates. Narrative with "now" and what was put on the part change nothing."""
    cases = [("Oil pan 2014 good, aluminium (was), now plastic.", "non_compliant"),
             ("Oil pan 2014 good. Now plastic (aluminium before).", "non_compliant"),
             ("Oil pan 2014 good; cast iron now, aluminium one cracked.", "non_compliant"),
             ("Oil pan steel good 2014 (typo, should read 1990).", "non_compliant"),
             ("Oil pan steel 2014, condition good - correction: poor.", "non_compliant"),
             ("Bracket steel 2014 good. Noise now gone.", "compliant"),
             ("Bracket steel 2014 good, now painted.", "compliant"),
             ("Bracket steel 2014 good; the old one was iron, now steel.", "compliant"),
             ("Bracket steel 2014 good - correct part number confirmed.", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_grade_range_is_as_good_as_its_worse_end(shipped):
    """agent/classify._read_condition_range: "fair to good", "poor-to-good" is a range, and
    the part is only known to be at least fair (these read compliant before: the model
    learnt "X to Y" as a change to Y); a change stays a change ("improved from fair to
    good", "fair to good after the repair"), and a range of good grades complies."""
    cases = [("Door hinge steel, 2015, condition fair to good.", "non_compliant"),
             ("Door hinge steel, 2015, fair to good condition.", "non_compliant"),
             ("Door hinge steel 2015 in fair-to-good shape", "non_compliant"),
             ("The door hinge is steel (2015) and is fair to good.", "non_compliant"),
             ("Door hinge steel 2015 condition: Fair To Good", "non_compliant"),
             ("Door hinge steel 2015, poor to good.", "non_compliant"),
             ("Door hinge steel 2015, good to fair.", "non_compliant"),
             ("Door hinge steel 2015, condition improved from fair to good.", "compliant"),
             ("Door hinge steel 2015, restored from poor to good.", "compliant"),
             ("Door hinge steel 2015, fair to good after the repair.", "compliant"),
             ("Door hinge steel 2015, poor to good now.", "compliant"),
             ("Door hinge steel 2015, good to very good.", "compliant"),
             ("Door hinge steel, condition fair to good.", "non_compliant")]
    _assert_verdicts(shipped, cases)
    v = shipped.classify(["Door hinge steel, 2015, condition fair to good."])[0]["facts"]["condition"]
    assert (v["state"], v["why"], v.get("range")) == ("violates", ["fair"], True)


def test_a_fact_written_as_a_guess_is_not_stated(shipped):
    """agent/classify._read_hedged: "possibly steel", "steel?", "year unknown (maybe 2014)",
    "2014 or 1994, not sure" are no record of the fact (each read compliant before: the model
    reads the words, not the doubt); a doubt about something else, or a fact also written
    plainly, changes nothing ("seems good to me" is a grade, not a doubt)."""
    cases = [("Heat shield, 2014, good, steel?", "undetermined"),
             ("Heat shield, 2014, good, possibly steel", "undetermined"),
             ("Heat shield, 2014, good, material probably steel", "undetermined"),
             ("Heat shield, steel, good, year unknown (maybe 2014)", "undetermined"),
             ("Heat shield, steel, good, 2014 or 1994, not sure", "undetermined"),
             ("Heat shield stainless steel 2014, customer says it is in good condition", "undetermined"),
             ("Heat shield, 2014, good, steel (probably galvanised)", "compliant"),
             ("Heat shield, steel, good, 2014. Not sure about the bolts.", "compliant"),
             ("Heat shield, steel, good, 2014. Customer says it rattles.", "compliant"),
             ("Heat shield, steel, seems good to me, 2014", "compliant"),
             ("Heat shield, steel, 2014, good. Could be the cause of the rattle?", "compliant"),
             ("Is it steel? Yes, steel. 2014, good.", "compliant"),
             # "pending" of a fact is a doubt; of the job ("warranty claim pending") it is not
             ("Heat shield, steel, good, 2014 pending", "undetermined"),
             ("Heat shield, steel, good, 2014. Warranty claim pending", "compliant"),
             ("Heat shield steel 2014 good, parts order pending", "compliant")]
    _assert_verdicts(shipped, cases)


def test_sides_with_records_of_their_own_and_damage_after_but(shipped):
    """agent/classify._read_sides: a side not inspected has no condition ("good (left), right
    not inspected" read compliant before), sides dated apart are two components ("LH 2011 RH
    1990": compliant before); damage after "but" is the part's condition ("good for its age
    but heavily corroded": compliant before). A side or "left" in another sense, and damage
    of something else or negated, change nothing."""
    cases = [("Mirror housings aluminium 2012, good (left), right not inspected", "undetermined"),
             ("Hub aluminium 2015, left one good, right one not checked", "undetermined"),
             ("Wishbones steel, left 2011 good, right 2012 not inspected", "undetermined"),
             ("Brackets steel good, LH 2011 RH 1990", "non_compliant"),
             ("Front wishbone 2011 steel good, rear 1991 steel good", "non_compliant"),
             ("Wishbones steel, good, left 2011, right 2012", "compliant"),
             ("Front wishbone 2011 steel good, rear 2013 steel good", "compliant"),
             ("Brake discs steel 2015 good, front and rear checked", "compliant"),
             ("The door mirror left the factory in 2012, aluminium, good", "compliant"),
             ("Bracket steel 2012 good, left side bolts not checked", "compliant"),
             ("Bracket steel 2011 good for its age but heavily corroded", "non_compliant"),
             ("Wishbone steel 2013, looks fine but cracked at the weld", "non_compliant"),
             ("Hub aluminium 2015, good, no cracks", "compliant"),
             ("Hub aluminium 2015, good, minor scratches", "compliant"),
             ("Steel brake line, 2019, excellent - actually on closer look it is badly corroded", "non_compliant"),
             ("Steel brake line 2019, found cracked", "non_compliant"),
             ("Bracket steel 2012, scrap", "non_compliant"),        # (a word the model read as a grade)
             ("Old bracket scrap, new one steel 2015 good", "compliant"),
             ("Steel brake line 2019 good, it is not corroded", "compliant"),
             ("Steel brake line 2019 good, the hose it is attached to looks cracked and was replaced", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_year_written_of_the_old_one_is_no_year_of_the_part(shipped):
    """agent/classify._read_former_years: every year of the note in a clause about the old
    part ("2014 stamped on the old one", "old unit dated 2014"): the part as it is now has no
    year stated (both read compliant before). A year of the part beside the old one's, or an
    old one without a year, changes nothing."""
    cases = [("Alternator aluminium, good condition, 2014 stamped on the old one, new one undated", "undetermined"),
             ("Alternator aluminium good; old unit dated 2014, replacement undated", "undetermined"),
             ("Alternator aluminium good, the old one was 2014", "undetermined"),
             ("Alternator aluminium, good, 1990; the old one was from 2010", "non_compliant"),
             ("Alternator aluminium good 2014, old one scrapped", "compliant"),
             ("Old alternator 1990 removed, new one aluminium 2014 good", "compliant"),
             ("Alternator aluminium, 2014, good (original part)", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_material_written_as_two_alternatives_is_not_stated(shipped):
    """agent/classify._read_either_material: "steel/plastic" does not say which the part is
    (read compliant before); two complying materials, or a slash between numbers, change nothing."""
    cases = [("Bracket steel/plastic, 2012, good", "undetermined"),
             ("Bracket 2012, good, material: cast iron / alu", "undetermined"),
             ("Bracket alu/steel, 2012, good", "compliant"),
             ("Bracket steel, 2012, good, 2/3 bolts replaced", "compliant"),
             ("Bracket stainless steel, 05/2012, good", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_complying_fact_needs_a_word_for_it(shipped):
    """agent/classify._result (_FOUNDED): the model reads unrelated words in a fact's place as
    complying ("Bracket steel 2012, assembly", "..., OEM", "Bracket mpn 2012 good": each read
    compliant before); with no complying grade / material word in the note, or a slip of one,
    the fact is not stated. Slips, grade codes and the regulation's words still count."""
    cases = [("Bracket steel 2012, assembly", "undetermined"),
             ("Bracket steel 2012, OEM", "undetermined"),
             ("Bracket steel 2012, component", "undetermined"),
             ("Bracket mpn 2012 good", "undetermined"),
             ("Bracket photos 2012 good", "undetermined"),
             ("Bracket steel 2012, good", "compliant"),
             ("Bracket stainles 2012, exellent", "compliant"),
             ("Bracket alumnium 2012, like new", "compliant"),
             ("Bracket steel 2012, cond: G", "compliant"),
             ("Bracket steel 2012, grade VG", "compliant"),
             ("alumnium bracket, mfd 2011, condtion gd", "compliant"),     # (a slip of the label too)
             ("bracket steel 2011 conditon: p", "non_compliant")]
    _assert_verdicts(shipped, cases)
    f = shipped.classify(["Bracket steel 2012, OEM"], explain=False, by_part=False)[0]["facts"]["condition"]
    assert f["state"] == "complies"          # (the whole-note reading alone, as training measures it)


def test_an_ordinary_word_one_letter_from_a_grade_is_no_grade(shipped):
    """agent/classify._WORDS_NOT_SLIPS: "find" is one letter from "fine", "found" from "sound",
    "next" from "exlt" — words of their own, not slips: the model's lean on them founds no
    condition, so a narrative sentence that has one ("Spent ages trying to find ...") is no
    part's record beside the component's and the note is compliant; slips still count."""
    cases = [("Bracket steel 2012, found", "undetermined"),
             ("Bracket steel 2012, next", "undetermined"),
             ("Bracket steel 2012 five", "undetermined"),
             ("Bracket steel 2012, godo", "compliant"),
             ("Spent ages trying to find where the whine came from on the motorway run. "
              "Alternator bracket is steel, 2011, good.", "compliant"),
             ("Customer says the car pulls left. Found nothing wrong with the alignment. "
              "Tie rod steel, 2015, good.", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_new_part_fitted_in_the_job_is_a_remark(shipped):
    """agent/classify._new_part_fitted: "New gasket fitted." after the component's record is
    the job's new part, not a second component without its year and material (the record
    decides: compliant, non-compliant, or undetermined when it lacks a fact)."""
    cases = [("Spent the morning chasing an intermittent misfire. It was a coil pack in the end. "
              "Coil pack bracket steel, 2015, good. Fitted new coil pack and plug.", "compliant"),
             ("Spent the morning chasing an intermittent misfire. It was a coil pack in the end. "
              "Coil pack bracket steel, good. Fitted new coil pack and plug.", "undetermined"),
             ("Clunk from the front end on the test drive. Traced it to a worn drop link. "
              "Lower arm steel, 2013, good. New drop links fitted both sides.", "compliant"),
             ("Came in with a coolant leak at the thermostat. Thermostat housing aluminium, 2016, good. "
              "New gasket and clips fitted.", "compliant"),
             ("Noisy wheel bearing reported by the customer on the phone. Hub carrier cast aluminium, 2014, "
              "good. Installed new bearing and circlip.", "compliant"),
             ("Came in with a coolant leak at the thermostat. Thermostat housing plastic, 2016, good. "
              "New gasket fitted.", "non_compliant"),
             ("Came in with a coolant leak at the thermostat. Thermostat housing alloy, good. "
              "New gasket fitted.", "undetermined")]
    _assert_verdicts(shipped, cases)


def test_a_material_the_model_cannot_read_written_as_a_field_complies(shipped):
    """agent/classify._read_material_field: brass, magnesium, titanium are not in the model's
    vocabulary (<unk>); written as a field of the part's own ("fuel rail: brass, 2015, good")
    in a note of one component, the material complies (only plastic and iron violate). Not
    a material of something else ("with brass fittings"), another part's, or a negated one."""
    cases = [("Waited an hour for the parts van. Meanwhile checked the fuel rail: brass, 2015, good.", "compliant"),
             ("Gear selector: made of magnesium, 2019, excellent.", "compliant"),
             ("Booked in for a pre-purchase inspection by the buyer. Turbo inlet pipe: titanium, 2021, good.",
              "compliant"),
             ("Heater valve with brass fittings, 2011, good.", "undetermined"),
             ("Checked the heater valve: brass, 2011, good. Also the bypass hose, 2012, good.", "undetermined"),
             ("Checked the heater valve: brass, 2011, good. Hose clamp plastic.", "non_compliant"),
             ("Fuel rail: not brass, 2015, good.", "undetermined"),
             ("While the trim was off we looked at the seat frame: magnesium, 2018, good.", "compliant"),
             ("Old seat frame: magnesium, 2018, good. Removed.", "undetermined")]
    _assert_verdicts(shipped, cases)
    f = shipped.classify(["Gear selector: made of magnesium, 2019, excellent."])[0]["facts"]["material"]
    assert f["state"] == "complies" and f["why"] == ["magnesium"]


def test_a_sentence_that_is_a_violating_record_makes_the_note_non_compliant(shipped):
    """agent/classify._violating_records: in an undetermined note read sentence by sentence, a
    sentence that is, read in full, a non-compliant record ("Wheel bearing housing steel, 2012,
    poor.") decides — the model had read "Quoted for a new hub assembly." as hearsay over the
    whole note; a record without a violation leaves it undetermined."""
    cases = [("Five minutes on the test drive was enough to hear it. Wheel bearing housing steel, 2012, poor. "
              "Quoted for a new hub assembly.", "non_compliant"),
             ("Customer wants it back today. Exhaust hanger bracket steel, 1990, good. Quoted for new hangers.",
              "non_compliant"),
             ("Customer wants it back today. Exhaust hanger bracket steel, good. Quoted for new hangers.",
              "undetermined")]
    _assert_verdicts(shipped, cases)
    f = shipped.classify([cases[0][0]])[0]["facts"]["condition"]
    assert f["state"] == "violates" and f["part"] == "Wheel bearing housing steel, 2012, poor."


def test_another_part_named_with_one_fact_beside_a_whole_record(shipped):
    """agent/classify._read_parts (_names_part): "Bracket steel 2014 good. Cover good." — a
    second component with one fact (read compliant before: the whole reading lent the cover the
    bracket's year and material) has its other facts not stated; its fact, if it violates,
    violates. Remarks that name no part, the record's own part, fixings and the job's new parts
    change nothing."""
    cases = [("Bracket steel 2014 good. Cover good.", "undetermined"),
             ("Front caliper: aluminium, 2015, very good. Disc good.", "undetermined"),
             ("Starter motor steel, 2013, good. Solenoid good.", "undetermined"),
             ("Alternator bracket steel, 2014, good. Pulley 2012.", "undetermined"),
             ("Front caliper: aluminium, 2015, very good. Carrier 1990.", "non_compliant"),
             ("Front caliper: aluminium, 2015, very good. Disc poor.", "non_compliant"),
             ("Alternator bracket steel, 2014, good. All good.", "compliant"),
             ("Alternator bracket steel, 2014, good. Bolts good.", "compliant"),
             ("Front caliper: aluminium, 2015, very good. Caliper slides greased.", "compliant"),
             ("Front caliper: aluminium, 2015, very good. Pads and discs new.", "compliant"),
             ("Starter motor steel, 2013, good. Tested ok on the bench.", "compliant"),
             ("Wheel hub steel 2011 good. Bearing steel, 2011, good.", "compliant"),
             ("Exhaust manifold steel 2010 good, heat shield good", "undetermined"),     # (a comma piece)
             ("Exhaust manifold steel 2010 good, studs good", "compliant"),
             ("Caliper aluminium 2015 good, piston good, seals good", "compliant")]
    _assert_verdicts(shipped, cases)


def test_damage_in_a_clause_of_its_own_beside_a_grade_is_the_worse_condition(shipped):
    """agent/classify._damage_beside_grade: "good on the surface, cracked underneath" read
    compliant (the model, given a grade and damage, reads the grade); the condition is the worse
    of the two, as a grade range's. Damage of something else, of the old part, negated or
    repaired changes nothing."""
    cases = [("Bracket steel 2014, good on the surface, cracked underneath.", "non_compliant"),
             ("Exhaust bracket steel 2013, good overall, corroded at the mount.", "non_compliant"),
             ("Coolant pipe aluminium 2012 - looks good - leaking at the joint.", "non_compliant"),
             ("Tie rod steel 2016 excellent, bent.", "non_compliant"),
             ("Caliper aluminium 2015, looks good but piston seized.", "non_compliant"),
             ("Water pump aluminium 2014 good, though the seal is leaking.", "non_compliant"),
             ("Water pump aluminium 2014 good, but not leaking.", "compliant"),
             ("Water pump aluminium 2014 good, but the old one was cracked.", "compliant"),
             ("Coolant pipe aluminium 2012 good, leaking clip replaced.", "compliant"),
             ("Coolant pipe aluminium 2012 good. Hose next to it cracked, customer informed.", "compliant"),
             ("Coolant pipe aluminium 2012, good, no longer leaking after the repair.", "compliant"),
             ("Water pump aluminium 2016 good; old pump: cracked.", "compliant"),
             ("Tie rod steel 2016, excellent. The old one was bent.", "compliant")]
    _assert_verdicts(shipped, cases)
    f = shipped.classify([cases[0][0]])[0]["facts"]["condition"]
    assert f["state"] == "violates" and f["why"] == ["cracked"]


def test_a_decade_without_its_century_or_in_words(shipped):
    """agent/classify._read_decade_words: "the late 80s", "the eighties", "early nineties" read
    no year (undetermined); the year fact is what the decade says of the rule. A decade
    across the cut-off, of the car, of the old part, a guess, or digits that are no decade
    ("set to 30s") state no year."""
    cases = [("Seat frame steel, built in the late 80s, good.", "non_compliant"),
             ("Seat frame steel from the eighties, good.", "non_compliant"),
             ("Seat frame steel, early nineties, good.", "non_compliant"),
             ("Seat frame steel, late nineties, good.", "compliant"),
             ("Seat frame: steel / late 80s / good", "non_compliant"),
             ("Seat frame steel, mid nineties, good.", "undetermined"),
             ("The car is from the eighties. Seat frame steel, good.", "undetermined"),
             ("Classic from the 70s, customer restoring it. Seat frame steel, good.", "undetermined"),
             ("Seat frame steel, probably from the eighties, good.", "undetermined"),
             ("Seat frame steel, good. The old one was from the eighties.", "undetermined"),
             ("Seat frame steel, good, tyre pressures set to 30s all round.", "undetermined")]
    _assert_verdicts(shipped, cases)
    f = shipped.classify([cases[0][0]])[0]["facts"]["year"]
    assert f["state"] == "violates" and f["range"] == [1986, 1989] and f["value"] == 1986


def test_a_swap_then_sentences_about_the_part_fitted(shipped):
    """agent/classify._read_now (_one_part_in_turn): "Swapped the cracked plastic thermostat
    housing for an aluminium one. New housing dated 2021, excellent." — the sentences after the
    swap go on about the part fitted, so the note read without the former part's words decides
    (undetermined before: the swap's reading was for one sentence only); a plastic part fitted
    still violates."""
    cases = [("Swapped the cracked plastic thermostat housing for an aluminium one. New housing dated 2021, "
              "excellent.", "compliant"),
             ("Replaced the iron flywheel with a steel one. It is dated 2020 and new.", "compliant"),
             ("Swapped the plastic cover for an aluminium one. Dated 2021, excellent.", "compliant"),
             ("Swapped the aluminium cover for a plastic one. New cover dated 2021, excellent.", "non_compliant")]
    _assert_verdicts(shipped, cases)


def test_parts_joined_by_an_ampersand_are_read_part_by_part(shipped):
    """agent/classify._PART_SPLIT: "Bracket steel 2012 good & cover aluminium good" read
    compliant (the cover has no year); " & " between records is a part boundary, as a
    sentence end is. "nuts & bolts", "checked & cleaned" change nothing."""
    cases = [("Bracket steel 2012 good & cover aluminium good", "undetermined"),
             ("Bracket steel 2012 good & cover aluminium 1991 good", "non_compliant"),
             ("Bracket steel 2012 good & cover aluminium 2013 good", "compliant"),
             ("Bracket steel 2012 good, nuts & bolts checked", "compliant"),
             ("Bracket steel 2012, checked & cleaned, good", "compliant")]
    _assert_verdicts(shipped, cases)


def test_good_of_something_else_is_no_grade(shipped):
    """agent/classify._GOOD_IDIOM: "had a good look", "gave it a good clean", "good news",
    "good to go" — the model read each "good" as the part's condition (all five compliant
    before, no grade written); a grade beside the idiom still counts."""
    cases = [("Had a good look underneath; bracket steel 2012", "undetermined"),
             ("Gave the bracket a good clean. Steel, 2012.", "undetermined"),
             ("Bracket steel 2012, good to go", "undetermined"),
             ("Good news: bracket is steel, 2012", "undetermined"),
             ("Bracket steel 2012. Good chance it was repainted", "undetermined"),
             ("Had a good look underneath; bracket steel 2012, good condition", "compliant"),
             ("Bracket steel 2012 looks good", "compliant"),
             ("Customer said the previous garage told her the subframe was rotten and needed replacing. Had a "
              "good look with the lift all the way up. It is surface rust only. Subframe steel, built 2010, "
              "condition good. Told her there is no need to replace it yet.", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_clause_reporting_what_a_record_said_is_no_fact(shipped):
    """agent/classify._RECORDED_AS (_read_negated): "had the driveshaft down as plastic, which is
    wrong: it is steel, not plastic" states steel (read non-compliant before: the clause of the
    record was taken as the part's); a part that is plastic stays so."""
    cases = [("He had the driveshaft down as plastic, which is wrong: it is steel, not plastic. "
              "Manufactured 2017, good condition.", "compliant"),
             ("Driveshaft plastic, not steel as listed, 2017, good", "non_compliant"),
             ("Driveshaft is plastic, listed as steel, not steel at all. 2017, good", "non_compliant")]
    _assert_verdicts(shipped, cases)


def test_a_record_then_replaced_it_with(shipped):
    """agent/classify._THEN_REPLACED: a part's record, then a clause that opens by replacing it
    — the part now is what follows, if that states two facts or more (the first read
    non-compliant from the former part's facts); a pronoun of a hose named in passing, with
    one fact after it, changes nothing."""
    cases = [("Housing is plastic, from 2013, in poor condition. Replaced it with an aluminium aftermarket one, "
              "new, dated 2024.", "compliant"),
             ("Pump iron 1990 poor, replaced it with an aluminium unit from 2022 in new condition", "compliant"),
             ("Bracket plastic 2012 good. Hose split, replaced it with a new one.", "non_compliant"),
             ("Pump aluminium 2022 new. Seal perished, we replaced it with a plastic one", "non_compliant")]
    _assert_verdicts(shipped, cases)


def test_another_parts_violating_material_in_a_short_clause(shipped):
    """agent/classify._read_bad_material_clauses: "Alternator alu 2015 good. Bracket plastic." —
    another component is plastic (read compliant before: the whole reading lent it the
    alternator's aluminium); not a negation, a guess, a former part, a fixing or a remark."""
    cases = [("Alternator alu 2015 good. Bracket plastic.", "non_compliant"),
             ("Alternator alu 2015 good + plastic bracket", "non_compliant"),
             ("Alternator alu 2015 good, not plastic", "compliant"),
             ("Alternator alu 2015 good, possibly plastic bracket", "compliant"),
             ("Alternator alu 2015 good, old plastic one binned", "compliant"),
             ("Alternator alu 2015 good. Plastic cover removed and binned.", "compliant"),
             ("Alternator alu 2015 good, replaced the plastic one", "compliant"),
             ("Bracket steel 2012 good, plastic clips", "compliant"),
             ("Bracket steel 2012 good, zero plastic", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_field_labels_abbreviation_ends_no_sentence(shipped):
    """agent/classify._part_sentences: "mat. steel, cond. good" is one clause — the full stop
    of a label's abbreviation cut the record into pieces that were no parts ("Latch mfd.",
    "2014, mat.") and hid the part without a condition beside a whole record (read compliant
    before)."""
    cases = [("Hinge mfd. 2012, mat. steel. Latch mfd. 2014, mat. steel, cond. good", "undetermined"),
             ("Hinge mfd. 2012, mat. steel, cond. good. Latch mfd. 1990, mat. steel, cond. good", "non_compliant"),
             ("Hinge mat. steel, cond. good, mfd. 2012. Latch mat. steel, cond. good", "undetermined"),
             ("Hinge mat. steel, cond. good, mfd. 2012. Latch mat. steel, cond. good, mfd. 2015", "compliant"),
             ("Hinge manuf. 2012, mat. forged steel, cond. excellent. Labelled and bagged", "compliant"),
             ("Seat belt buckle manuf. 2011, mat. forged steel, cond. excellent", "compliant")]
    _assert_verdicts(shipped, cases)
    from agent.classify import _ends_sentence, _part_sentences
    assert _part_sentences("Timing belt dom 2029, mtl alu, cond. new. Warranty claim") == [
        "Timing belt dom 2029, mtl alu, cond. new.", "Warranty claim"]
    assert _part_sentences("format. Next; one? two") == ["format.", "Next;", "one?", "two"]
    assert not _ends_sentence("Buckle manuf. 2011, mat. steel, cond. good") and _ends_sentence("Buckle steel. Good")


def test_parts_each_with_its_record_in_brackets(shipped):
    """agent/classify._comma_parts: several parts in one sentence, each record in brackets
    ("bracket (steel, 2014, good) and cover (steel, 1989, good)") or between bars ("Hub steel
    2015 good | Cap plastic 2016 good") are read part by part: one
    part out of compliance, or one without its year, decides (these read compliant before);
    bracketed years alone ("Bracket steel (2014) good, ...") are no records."""
    cases = [("bracket (steel, 2014, good) and cover (steel, 1989, good).", "non_compliant"),
             ("Two parts checked: bracket (steel, 2014, good) and cover (steel, 1989, good).", "non_compliant"),
             ("bracket (steel, 2014, good), cover (plastic, 2015, good)", "non_compliant"),
             ("Exhaust bracket (steel, 2012, good) + heat shield (iron, 2015, good)", "non_compliant"),
             ("bracket (steel, 2014, good) and cover (steel, good).", "undetermined"),
             ("bracket (steel, 2014, good) and cover (steel, 2015, good).", "compliant"),
             ("Bracket steel (2014) good, cover steel (2016) good.", "compliant"),
             ("Hub steel 2015 good | Cap plastic 2016 good", "non_compliant"),
             ("Hub steel 2015 good | Cap steel 2016 good", "compliant"),
             ("Catalytic Converter | 2019 | Carbon-fibre | Very Good", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_second_part_without_its_year_in_one_sentence_or_a_numbered_list(shipped):
    """agent/classify._read_parts: two parts joined by a comma ("Front caliper aluminium 2016
    good, rear caliper aluminium good") or numbered on one line ("1) ... 2) ...") where one
    lacks its year: the whole reading lent it the other's (compliant); now undetermined.
    Whole records stay as they were. Notes written for this test."""
    cases = [("Front caliper aluminium 2016 good, rear caliper aluminium good", "undetermined"),
             ("1) alternator - aluminium - 2012 - good 2) starter - steel - good", "undetermined"),
             ("(1) wiper arm steel 2014 good (2) wiper motor steel good", "undetermined"),
             ("Front caliper aluminium 2016 good, rear caliper aluminium 2017 good", "compliant"),
             ("1) alternator - aluminium - 2012 - good 2) starter - steel - 2014 - good", "compliant"),
             ("Front brake caliper cast aluminium 2016 good, rear caliper cast iron 2016 good", "non_compliant"),
             ("Water pump, aluminium, 2012, good", "compliant"),
             ("Condition good, aluminium alloy, made 2015", "compliant")]
    _assert_verdicts(shipped, cases)


def test_the_old_part_then_replaced_by_a_pronoun(shipped):
    """agent/classify._read_old_then_replaced: "The old X was ..., (we) replaced it/them with
    Y": Y is the part as it is now, and the old part's facts are not (the hand-written note
    with 1991/poor before the new steel ones of 2023 was undetermined). Notes written for
    this test; a pronoun after another part's old piece leaves a compliant note alone."""
    cases = [("The old shock absorbers were from 1991 and in poor condition, we replaced them with new steel "
              "ones made in 2023.", "compliant"),
             ("The old pump was cast iron from 1990, replaced it with an aluminium one from 2015 in good condition",
              "compliant"),
             ("The old pump was cast iron from 1990, replaced it with an aluminium one in good condition",
              "undetermined"),
             ("The original cover was steel; we swapped it for a plastic one (2019, very good).", "non_compliant"),
             ("The old bracket was steel from 2010, replaced it with a used one", "undetermined"),
             ("Pump 2010 steel good. The old belt was cracked, replaced it with a new one.", "compliant")]
    _assert_verdicts(shipped, cases)


def test_also_looked_at_another_part_opens_a_component(shipped):
    """agent/classify._components (_ALSO_OPENS): "also looked at the washer pump, ..." or "Also
    Re washer pump - ..." opens another component as a heading does, so a second part without
    its year is not lent the first one's; "Also in good condition" or "also checked the
    bolts" continue the same record. Notes written for this test."""
    cases = [("Looked at the wiper motor, steel, 2013, good also looked at the washer pump, aluminium, good",
              "undetermined"),
             ("Re wiper motor - steel, 2013, good. Also Re washer pump - aluminium, good", "undetermined"),
             ("Looked at the wiper motor, steel, 2013, good also looked at the washer pump, aluminium, 2015, good",
              "compliant"),
             ("Bracket built 2010, aluminium. Also in good condition.", "compliant"),
             ("Bracket built 2010, aluminium, good. Also checked the bolts, all tight.", "compliant")]
    _assert_verdicts(shipped, cases, explains=(False,))


def test_hearsay_that_closes_a_record_is_the_source_of_the_whole_record(shipped):
    """agent/classify._HEARSAY_END: "according to the previous owner", "per the seller", "or so
    the customer claims", "- the driver says" at the end of a record is where all of it comes
    from, not only its last clause (these read compliant); hearsay that opens a remark about
    something else, or a violation heard of, changes nothing."""
    cases = [("Tie rod end steel 2013 good according to the previous owner", "undetermined"),
             ("Tie rod end: steel, 2013, good, as per the seller.", "undetermined"),
             ("Tie rod end steel from 2013 in good shape, or so the customer claims.", "undetermined"),
             ("Steel tie rod end, 2013, good condition - the driver says", "undetermined"),
             ("Tie rod end steel 2013 good per the owner. Wheel bearing noise noted.", "undetermined"),
             ("Tie rod end steel 2013 good. The customer says the steering pulls left.", "compliant"),
             ("Customer says it knocks over bumps. Tie rod end steel 2013 good.", "compliant"),
             ("Tie rod end steel, 2013, good condition, customer says it rattles", "compliant"),
             ("Tie rod end steel 1991 good according to the previous owner", "non_compliant")]
    _assert_verdicts(shipped, cases)


def test_a_year_joined_to_another_is_the_range_between_them(shipped):
    """agent/classify._year_range: two years or decades joined by "or", "to", "and", a dash or a
    slash ("1988-2003", "between 1990 and 2010", "the 80s or 2000s") are the range from the
    first to the last: a range across 1995 states no year (these read compliant, or the
    violating end), one before 1995 violates, one after complies; a number with a unit after
    the dash ("1961 - 2042 hours") is no second year, nor is a date ("1994-11-30")."""
    cases = [("Wiper arm steel good, 1988-2003.", "undetermined"),
             ("Wiper arm steel good, made between 1990 and 2010", "undetermined"),
             ("Wiper arm, steel, good, from the 80s or 2000s", "undetermined"),
             ("Wiper arm, steel, good, 1990s or 2000s", "undetermined"),
             ("Wiper arm steel good, built 1993 / 2008", "undetermined"),
             ("Wiper arm steel good, built 1984 or 1987", "non_compliant"),
             ("Wiper arm steel good, from the 1970s to the 1980s", "non_compliant"),
             ("Wiper arm steel good, 2012-2014 model", "compliant"),
             ("Wiper arm steel good, built 1961 - 2015 hours on the meter", "non_compliant"),
             ("Wiper arm steel good, built 1994-11-30", "non_compliant"),
             ("Wiper arm steel good, built 2011, odometer 1990 - 2000 km", "compliant"),
             ("Wiper arm steel good, 1990s.", "undetermined")]
    _assert_verdicts(shipped, cases)
    f = shipped.classify(["Wiper arm steel good, 1988-2003."])[0]["facts"]["year"]
    assert (f["state"], f["value"], f["range"]) == ("not_stated", None, [1988, 2003])


def test_the_vehicles_year_is_no_year_of_the_part(shipped):
    """agent/classify._vehicle_year: a year in a clause about the car ("the car is a 2010
    model", "Vehicle built 2010", "customer's van: 2009") is the vehicle's: alone, the part's
    year is not stated (these read compliant); beside the part's own year it changes nothing,
    and a part "in the car" keeps its year."""
    cases = [("The car is a 2010 model. Door hinge steel, good.", "undetermined"),
             ("Vehicle built 2010; door hinge steel, good", "undetermined"),
             ("Customer's van: 2009. Door hinge is steel and in good order.", "undetermined"),
             ("Car is a 2010 model; steel bracket made 2012, good condition", "compliant"),
             ("Vehicle built 2010. Door hinge steel, 1989, good.", "non_compliant"),
             ("Door hinge built 2012 in the car, steel, good", "compliant"),
             ("Door hinge steel, good, 2012, carbon trim nearby", "compliant"),
             # a year written before a make is the vehicle's model year (_MAKE_AFTER)
             ("2011 Ford Focus: bracket steel, good", "undetermined"),
             ("2011 VW Golf - bracket steel good", "undetermined"),
             ("Customer's 1994 BMW E36, front hub aluminium, good", "undetermined"),
             ("2011 Ford Focus: bracket steel, good, made 1990", "non_compliant"),
             ("2011 Ford Focus: bracket steel, good, made 2012", "compliant"),
             ("2011 seat belt buckle, steel, good", "compliant"),
             ("Bracket steel 2011, good, fits Ford Focus", "compliant")]
    _assert_verdicts(shipped, cases)


def test_records_between_double_bars_and_an_order_number(shipped):
    """agent/classify._PART_SPLIT: a table whose records are set apart by "||" is read record by
    record ("hub | 2015 | steel | good || cap | 1990 | steel | good" read compliant); _in_code:
    "order 2011" is an order's number, not a year."""
    cases = [("hub | 2015 | steel | good || cap | 1990 | steel | good", "non_compliant"),
             ("hub | 2015 | steel | good || cap | 2016 | steel | good", "compliant"),
             ("Order 2011 placed for a steel bracket, good condition", "undetermined"),
             ("Steel bracket built 2011, good condition, order 4471 placed", "compliant")]
    _assert_verdicts(shipped, cases)


def test_a_doubt_after_the_words_it_doubts_and_a_grade_of_an_earlier_visit(shipped):
    """agent/classify._HEDGED: "(estimated)", "I think", "if the stamp is right" after a fact,
    "cond ?" for a grade, and a grade "at the last service" or "last year" are no record of
    the part as it is now (each read compliant); a remark with such words about something else
    changes nothing."""
    cases = [("Coolant pipe aluminium, good, 2012 (estimated)", "undetermined"),
             ("Coolant pipe aluminium, good, 2012 I think", "undetermined"),
             ("Coolant pipe aluminium good, made 2012 if the stamp is right", "undetermined"),
             ("Coolant pipe aluminium 2012 cond ?", "undetermined"),
             ("Coolant pipe aluminium 2012, condition good at the last service", "undetermined"),
             ("Coolant pipe aluminium 2012, good last year, not looked at today", "undetermined"),
             ("Coolant pipe aluminium 2012 good - grade to be confirmed", "undetermined"),
             ("Coolant pipe aluminium good, 2012 (TBC)", "undetermined"),
             ("Coolant pipe aluminium, good. Stamp faded, looks like 2012 maybe 2013", "undetermined"),
             ("Coolant pipe aluminium, looks like new, made 2012", "compliant"),
             ("Coolant pipe aluminium 2012 good. Last service done at 40k.", "compliant"),
             ("Coolant pipe aluminium 2012 good. I think the hose clips need renewing.", "compliant")]
    _assert_verdicts(shipped, cases)


def test_damage_in_place_of_a_grade_and_a_plastic_by_its_polymers_name(shipped):
    """agent/classify._DAMAGE and _PLASTIC_NAME (through _read_slips): damage written where the
    grade goes (", cracked", "condition: worn", "was good, now seized") is a poor (worn: fair)
    condition, and a plastic named by its polymer ("nylon", "PA66-GF30", ">PP<") is plastic,
    where the note states no material (these read undetermined, or compliant); damage said of
    something else ("cracked windscreen", "the exhaust leaking") changes nothing, nor does a
    polymer named as the former part's."""
    cases = [("Mirror arm steel, 2014, cracked", "non_compliant"),
             ("Mirror arm steel, 2014, badly corroded.", "non_compliant"),
             ("Mirror arm steel 2014, condition: worn", "non_compliant"),
             ("2014 steel mirror arm, was good, now seized", "non_compliant"),
             ("Mirror arm nylon, 2014, good", "non_compliant"),
             ("Mirror arm PA66-GF30 2014 good", "non_compliant"),
             ("Mirror arm >PP< 2014 good condition", "non_compliant"),
             ("Mirror arm steel 2014 good; cracked windscreen noted", "compliant"),
             ("Mirror arm steel 2014 good, the exhaust is leaking at the joint", "compliant"),
             ("MIRROR ARM: PA6 plastc -> spring steel, made 2014, rated good", "compliant")]
    _assert_verdicts(shipped, cases)


def test_another_of_the_same_part_by_count_or_side_keeps_its_year(shipped):
    """agent/classify._read_parts: beside a whole record, a piece that names another of the
    part by count or side and only its year ("1x 1990", "right one 1990") decides with its
    year (these read compliant)."""
    cases = [("2x steel brackets 2011 good, 1x 1990", "non_compliant"),
             ("Left bracket steel 2011 good, right one 1990", "non_compliant"),
             ("Left bracket steel 2011 good, right one 2012", "compliant"),
             ("Bracket steel 2011 good, other one 1992", "non_compliant")]
    _assert_verdicts(shipped, cases)


def test_the_former_part_binned_or_replaced_for_is_not_the_part(shipped):
    """agent/classify._FORMER_SPANS: "X binned/scrapped, Y replacement fitted" and "a Y
    replacement for the X" name the former part X: its material is no fact of the part now
    ("Steel original binned, plastic replacement fitted" read compliant; the converse
    non-compliant)."""
    cases = [("Aluminium original scrapped, plastic replacement fitted, 2020, good.", "non_compliant"),
             ("Plastic original scrapped, aluminium replacement fitted, 2020, good.", "compliant"),
             ("Cast iron one thrown away, new one aluminium, 2020, good", "compliant"),
             ("Aluminium bracket 2020 good; old washers binned", "compliant")]
    _assert_verdicts(shipped, cases)
