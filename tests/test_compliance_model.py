"""The compliance model end to end: a tiny Keras LSTM trained here (once per session) on a
small generated corpus -> tf2onnx -> int8 -> signed bundle -> the agent's classifier; plus
the shipped bundle on styles and years it never saw, the CLIs and a tampered bundle."""

import json
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
from agent.tokenizer import Tokenizer
from export.compliance import corpus as C

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = DEFAULT_COMPLIANCE_BUNDLE


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One small training run (~20-40 s incl. TF import) shared by every test here."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from export.compliance.train import TrainConfig, run_training
    d = tmp_path_factory.mktemp("compliance")
    cfg = TrainConfig(out=str(d / "bundle"), artifacts=str(d / "art"), notes=4000, heldout_notes=300,
                      max_epochs=6, patience=2, seed=3, threads=1, units=32, emb=16, batch=32,
                      time_budget_s=50, mlflow=True, mlflow_uri=f"sqlite:///{d / 'mlflow.db'}", version="0.0.1-test")
    t0 = time.monotonic()
    s = run_training(cfg)
    s["wall_s"] = time.monotonic() - t0
    s["dir"] = d
    return s


def test_small_model_reaches_98_percent_on_held_out_split_within_a_minute(trained):
    assert trained["timings"]["fit_s"] < 60
    assert trained["metrics"]["keras_test"]["n"] == 400
    assert trained["metrics"]["keras_test"]["accuracy"] >= 0.98
    assert trained["metrics"]["int8_test"]["accuracy"] >= 0.98


def test_token_ids_identical_at_training_and_on_the_agent(trained):
    from export.compliance.train import encode
    tok_train = trained["objects"]["tokenizer"]
    bundle = verify_bundle(trained["bundle"])
    clf = ComplianceClassifier.from_bundle(bundle)
    recs = trained["objects"]["test"] + trained["objects"]["heldout"]
    x_train, _ = encode(tok_train, recs)
    x_agent = np.asarray([clf.tokenizer.encode(r["text"]) for r in recs], dtype=np.int32)
    assert x_train.shape == x_agent.shape == (len(recs), tok_train.max_len)
    assert np.array_equal(x_train, x_agent)
    # the vocabulary really travels inside the signed manifest
    assert bundle.manifest["preprocessing"]["tokenizer"]["vocab"] == tok_train.vocab


def test_onnx_fp32_matches_keras_and_int8_agrees_on_labels(trained):
    from export.compliance import onnx_export as OX
    from export.compliance.train import encode, keras_predict
    recs = trained["objects"]["test"] + trained["objects"]["heldout"]
    x, _ = encode(trained["objects"]["tokenizer"], recs)
    pk = keras_predict(trained["objects"]["keras_model"], x)
    p32 = OX.predict(OX.session(trained["objects"]["fp32"]), x)
    clf = ComplianceClassifier.from_bundle(verify_bundle(trained["bundle"]))
    p8 = clf.predict_proba([r["text"] for r in recs])
    assert np.max(np.abs(p32 - pk)) <= 1e-4
    assert np.mean((p8 >= 0.5) == (pk >= 0.5)) >= 0.999
    par = verify_bundle(trained["bundle"]).manifest["parity"]
    assert par["fp32_vs_keras_max_abs_prob_err"] <= 1e-4 and par["int8_vs_keras_label_agreement"] >= 0.999


def test_mlflow_run_has_params_metrics_and_artifacts(trained):
    import mlflow
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{trained['dir'] / 'mlflow.db'}")
    run = client.get_run(trained["mlflow_run_id"])
    assert run.data.params["lr"] == "0.001"
    for k in ("eval_loss", "eval_accuracy", "loss", "accuracy", "val_loss", "val_accuracy"):
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


def test_shipped_bundle_on_held_out_styles_and_years(shipped):
    """Notes in styles and with years excluded from the shipped model's training (and a
    different seed and unseen workshop remarks): >= 99.5 %."""
    m = verify_bundle(SHIPPED).manifest["training"]
    assert set(m["holdout_styles"]) == set(C.HOLDOUT_STYLES) and set(m["holdout_years"]) == set(C.HOLDOUT_YEARS)
    g = C.NoteGenerator(424242, remarks=C.REMARKS_HOLDOUT)
    held = [g.note(style=g.r.choice(C.HOLDOUT_STYLES)) for _ in range(1000)]
    g.years = list(C.HOLDOUT_YEARS)
    held += [g.note() for _ in range(1000)]
    p = shipped.predict_proba([n["text"] for n in held])
    acc = float(np.mean((p >= 0.5) == np.array([n["label"] for n in held], bool)))
    assert acc >= 0.995, acc


@pytest.mark.parametrize("text,compliant,why", [
    ("Manufactured in 1985 made of steel in fair condition", False, {"1985", "fair"}),
    ("Good condition carbon fiber component manufactured in 2010", True, None),
    ("Steel component manufactured in 1995 in fair condition", False, {"fair"}),
    ("manufactured in 2027 made of stainless steel in good condition", True, None),
    ("manufactured in 1961 made of stainless steel in good condition", False, {"1961"}),
    ("mat: iron / yr 2027 / cond good", False, {"iron"}),
    ("Alternator, built 1994, aluminium, like new", False, {"1994"}),
    ("Alternator, built 1996, aluminium, like new", True, None),
    ("ABS plastic door handle, MY2021, excellent", False, {"plastic"}),
])
def test_shipped_bundle_hand_written_notes_and_why(shipped, text, compliant, why):
    assert shipped.classify([]) == []
    v = shipped.classify([text])[0]
    assert v["compliant"] is compliant, v
    assert 0.0 <= v["p_noncompliant"] <= 1.0 and (v["p_noncompliant"] >= 0.5) != compliant
    if why:
        assert why & set(w.lower() for w in v["why"]), v


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
    assert out[0]["compliant"] is False and "1985" in out[0]["why"]
    assert [("error" in o) for o in out] == [False, True, True, True, False, True, False, True, True]
    assert out[8]["id"] == 9 and out[8]["line"] == 9
    assert "empty" in out[1]["error"] and "2000" in out[2]["error"] and "UTF-8" in out[3]["error"]
    assert out[4] == {**out[4], "id": 7, "compliant": True}
    assert out[5]["id"] == "b" and out[6]["compliant"] is False
    # all-good input from stdin -> exit 0
    r = _cli(["classify", "-"], stdin=b"mat: iron / yr 1999 / cond good\nsteel 2012 good\n")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2


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
    assert right / total >= 0.99
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
                          heldout_notes=60, max_epochs=1, seed=11, threads=1, units=16, emb=8, mlflow=False)
        run_training(cfg)
        b = verify_bundle(tmp_path / run)
        outs.append((b.model_bytes, b.manifest["preprocessing"], (tmp_path / f"art{run}" / "model_fp32.onnx").read_bytes()))
    assert outs[0][0] == outs[1][0] and outs[0][2] == outs[1][2]
    assert outs[0][1] == outs[1][1]
