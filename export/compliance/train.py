"""Keras Embedding -> LSTM -> Dense(sigmoid) note classifier -> signed int8 ONNX bundle.

Lineage: the workshop's Keras LSTM (Adam 1e-3, sigmoid, dropout 0.2), with
- a TRAINED 32-d embedding: GloVe is not reachable offline, and our vocabulary is a few
  hundred workshop words plus year-digit tokens that GloVe would not cover anyway;
- the number-aware tokenizer of agent/tokenizer.py (the same code runs on the car);
- early stopping on validation loss (best weights restored), fixed seeds and
  deterministic ops, so `--seed` reproduces the bundle;
- held-out evaluation on note STYLES and YEARS that never appear in training
  (corpus.HOLDOUT_STYLES / HOLDOUT_YEARS, plus unseen workshop remarks).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from agent.tokenizer import Tokenizer
from export.compliance import corpus as C

log = logging.getLogger(__name__)
BUNDLE_NAME = "compliance"


@dataclass
class TrainConfig:
    out: str = "agent/models/compliance"
    artifacts: str = "artifacts/compliance"
    data: str | None = None               # notes.jsonl from `trey-export data compliance`
    notes: int = 30000                    # generated when data is None
    heldout_notes: int = 4000
    holdout: bool = True                  # exclude HOLDOUT_STYLES/YEARS from training
    seed: int = 7
    max_len: int = 48
    year_grain: int = 5                   # agent/tokenizer.py: 5 = half-decade buckets, 1 = digits
    emb: int = 32
    units: int = 64
    lr: float = 1e-3
    batch: int = 64
    max_epochs: int = 20
    patience: int = 3
    time_budget_s: float = 480.0          # stop training (best weights kept) past this
    threads: int = 2
    version: str = "1.0.0"
    mlflow: bool = True
    mlflow_uri: str | None = None         # None = local store ./mlruns/mlflow.db (sqlite)
    key_path: str | None = None
    progress: bool = False
    extra: dict = field(default_factory=dict)


def _tf(threads: int):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass                                # already initialised in this process
    return tf


def build_model(vocab_size: int, max_len: int, emb: int = 32, units: int = 64, lr: float = 1e-3):
    tf = _tf(1)
    keras = tf.keras
    inp = keras.Input((max_len,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab_size, emb, name="embedding")(inp)
    x = keras.layers.LSTM(units, dropout=0.2, name="lstm")(x)
    out = keras.layers.Dense(1, activation="sigmoid", name="p_noncompliant")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def load_notes(path: str | Path) -> list[dict]:
    p = Path(path)
    if p.is_dir():
        p = p / "notes.jsonl"
    with open(p, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def make_corpus(cfg: TrainConfig) -> tuple[list[dict], list[dict]]:
    """(training-distribution notes, held-out notes). The held-out set mixes notes in an
    unseen style, notes with an unseen year and both; it also uses unseen remarks."""
    if cfg.data:
        allnotes = load_notes(cfg.data)
        if not cfg.holdout:
            return allnotes, []
        return C.split_train_holdout(allnotes)
    styles = [s for s in C.STYLES if not (cfg.holdout and s in C.HOLDOUT_STYLES)]
    years = [y for y in range(C.YEAR_MIN, C.YEAR_MAX + 1) if not (cfg.holdout and y in C.HOLDOUT_YEARS)]
    train = C.NoteGenerator(cfg.seed, styles=styles, years=years).notes(cfg.notes)
    if not cfg.holdout:
        return train, []
    gen = C.NoteGenerator(cfg.seed + 10007, remarks=C.REMARKS_HOLDOUT)
    held = []
    third = cfg.heldout_notes // 3
    held += [gen.note(style=gen.r.choice(C.HOLDOUT_STYLES)) for _ in range(third)]       # unseen style
    gen.years = list(C.HOLDOUT_YEARS)
    held += [gen.note() for _ in range(third)]                                           # unseen year
    held += [gen.note(style=gen.r.choice(C.HOLDOUT_STYLES)) for _ in range(cfg.heldout_notes - 2 * third)]
    return train, held


def split(records: list[dict], seed: int, frac=(0.8, 0.1)) -> tuple[list, list, list]:
    idx = np.random.default_rng(seed).permutation(len(records))
    a, b = int(len(idx) * frac[0]), int(len(idx) * (frac[0] + frac[1]))
    pick = lambda ix: [records[i] for i in ix]  # noqa: E731
    return pick(idx[:a]), pick(idx[a:b]), pick(idx[b:])


def encode(tok: Tokenizer, recs: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(tok.encode_batch([r["text"] for r in recs]), dtype=np.int32).reshape(-1, tok.max_len)
    y = np.asarray([r["label"] for r in recs], dtype=np.float32)
    return x, y


def fit(cfg: TrainConfig, tok: Tokenizer, train, val):
    tf = _tf(cfg.threads)
    keras = tf.keras
    keras.utils.set_random_seed(cfg.seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # noqa: BLE001 - older TF: seeds alone
        pass
    model = build_model(len(tok.vocab), tok.max_len, cfg.emb, cfg.units, cfg.lr)
    xt, yt = encode(tok, train)
    xv, yv = encode(tok, val)
    t0 = time.monotonic()

    class Budget(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if time.monotonic() - t0 > cfg.time_budget_s:
                log.warning("time budget %.0fs reached after epoch %d", cfg.time_budget_s, epoch + 1)
                self.model.stop_training = True

    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)
    hist = model.fit(xt, yt, validation_data=(xv, yv), epochs=cfg.max_epochs, batch_size=cfg.batch,
                     shuffle=True, verbose=2 if cfg.progress else 0, callbacks=[stop, Budget()])
    h = hist.history
    history = [{"epoch": i + 1, "loss": float(h["loss"][i]), "accuracy": float(h["accuracy"][i]),
                "val_loss": float(h["val_loss"][i]), "val_accuracy": float(h["val_accuracy"][i])}
               for i in range(len(h["loss"]))]
    best = int(np.argmin(h["val_loss"])) + 1
    return model, history, best, time.monotonic() - t0


def keras_predict(model, x: np.ndarray) -> np.ndarray:
    return model.predict(x, batch_size=1024, verbose=0).reshape(-1)


def _metrics(p: np.ndarray, y: np.ndarray) -> dict:
    yhat = p >= 0.5
    yy = y >= 0.5
    tp, tn = int(np.sum(yhat & yy)), int(np.sum(~yhat & ~yy))
    fp, fn = int(np.sum(yhat & ~yy)), int(np.sum(~yhat & yy))
    eps = 1e-7
    loss = float(-np.mean(yy * np.log(np.clip(p, eps, 1)) + (~yy) * np.log(np.clip(1 - p, eps, 1))))
    return {"n": int(len(y)), "accuracy": float((tp + tn) / max(len(y), 1)), "loss": loss,
            "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp}}


def _plots(art: Path, history: list[dict], confusion: dict, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(ep, [h["loss"] for h in history], label="train")
    ax[0].plot(ep, [h["val_loss"] for h in history], label="validation")
    ax[0].set_title("loss")
    ax[1].plot(ep, [h["accuracy"] for h in history], label="train")
    ax[1].plot(ep, [h["val_accuracy"] for h in history], label="validation")
    ax[1].set_title("accuracy")
    for a in ax:
        a.set_xlabel("epoch")
        a.legend()
    fig.tight_layout()
    fig.savefig(art / "training_curves.png", dpi=90)
    plt.close(fig)
    m = np.array([[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(m, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(m[i, j]), ha="center", va="center")
    ax.set_xticks([0, 1], ["compliant", "non-compliant"])
    ax.set_yticks([0, 1], ["compliant", "non-compliant"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(art / "confusion_matrix.png", dpi=90)
    plt.close(fig)


def run_training(cfg: TrainConfig) -> dict:
    from export.bundle import build_bundle
    from export.compliance import onnx_export as OX

    t_start = time.monotonic()
    art = Path(cfg.artifacts)
    art.mkdir(parents=True, exist_ok=True)
    timings = {}
    train_all, held = make_corpus(cfg)
    train, val, test = split(train_all, cfg.seed)
    tok = Tokenizer.fit([r["text"] for r in train], max_len=cfg.max_len, year_grain=cfg.year_grain)
    timings["corpus_s"] = time.monotonic() - t_start

    model, history, best_epoch, timings["fit_s"] = fit(cfg, tok, train, val)

    t = time.monotonic()
    xs, ys = encode(tok, test)
    xh, yh = encode(tok, held) if held else (np.zeros((0, tok.max_len), np.int32), np.zeros(0, np.float32))
    k_test, k_held = keras_predict(model, xs), (keras_predict(model, xh) if len(xh) else np.zeros(0))
    fp32 = OX.export_fp32(model, tok.max_len)
    int8 = OX.quantize_int8(fp32)
    s32, s8 = OX.session(fp32), OX.session(int8)
    xp = np.concatenate([xs, xh])
    kp = np.concatenate([k_test, k_held])
    par = OX.parity(kp, OX.predict(s32, xp), OX.predict(s8, xp))
    q_test, q_held = OX.predict(s8, xs), OX.predict(s8, xh)
    timings["export_s"] = time.monotonic() - t

    metrics = {"keras_test": _metrics(k_test, ys), "int8_test": _metrics(q_test, ys)}
    if len(xh):
        metrics["keras_heldout"] = _metrics(k_held, yh)
        metrics["int8_heldout"] = _metrics(q_held, yh)
        by = {}
        for name, sel in (("unseen_style", [r["style"] in C.HOLDOUT_STYLES and r["year"] not in C.HOLDOUT_YEARS for r in held]),
                          ("unseen_year", [r["year"] in C.HOLDOUT_YEARS and r["style"] not in C.HOLDOUT_STYLES for r in held]),
                          ("unseen_both", [r["year"] in C.HOLDOUT_YEARS and r["style"] in C.HOLDOUT_STYLES for r in held])):
            sel = np.asarray(sel, bool)
            if sel.any():
                by[name] = {"n": int(sel.sum()), "accuracy": float(np.mean((q_held[sel] >= 0.5) == (yh[sel] >= 0.5)))}
        metrics["int8_heldout_by_kind"] = by
    errors = [{"text": r["text"], "label": r["label"], "p": float(p)}
              for r, p in zip(test + held, np.concatenate([q_test, q_held])) if (p >= 0.5) != bool(r["label"])]

    eval_key = "int8_heldout" if len(xh) else "int8_test"
    manifest = {
        "name": BUNDLE_NAME, "version": cfg.version, "kind": "note-classifier",
        "inputs": [{"name": OX.INPUT, "dtype": "int32", "shape": ["batch", tok.max_len]}],
        "outputs": [{"name": OX.OUTPUT, "dtype": "float32", "shape": ["batch", 1]}],
        "preprocessing": {"tokenizer": tok.to_manifest()},
        "decision": {"threshold": 0.5, "label_1": "non-compliant",
                     "rule": "manufactured before 1995, or in fair or poor condition, or made of plastic or iron"},
        "model": {"architecture": f"Embedding({len(tok.vocab)},{cfg.emb}) -> LSTM({cfg.units}, dropout 0.2) -> Dense(1, sigmoid)",
                  "framework": "keras -> tf2onnx (opset %d) -> onnxruntime dynamic int8" % OX.OPSET,
                  "best_epoch": best_epoch, "epochs_run": len(history)},
        "training": {"seed": cfg.seed, "notes": len(train_all), "train": len(train), "val": len(val),
                     "test": len(test), "heldout": len(held), "data": cfg.data or "generated",
                     "holdout_styles": list(C.HOLDOUT_STYLES) if cfg.holdout else [],
                     "holdout_years": list(C.HOLDOUT_YEARS) if cfg.holdout else [],
                     "reproduce": f"trey-export train compliance --seed {cfg.seed} --notes {cfg.notes} --out {cfg.out}"},
        "metrics": {"eval_accuracy": metrics[eval_key]["accuracy"], "eval_loss": metrics[eval_key]["loss"],
                    **{k: {kk: vv for kk, vv in v.items()} for k, v in metrics.items()}},
        "parity": par,
        "explanation": {"method": "occlusion: each word replaced by <unk>, change in logit"},
    }
    out = build_bundle(cfg.out, int8, manifest, key_path=cfg.key_path)
    (art / "model_fp32.onnx").write_bytes(fp32)
    model.save(art / "model.keras")           # for the benchmark (Keras vs ONNX fp32 vs int8)
    (art / "history.json").write_text(json.dumps(history, indent=1))
    (art / "errors.jsonl").write_text("".join(json.dumps(e) + "\n" for e in errors[:500]))
    _plots(art, history, metrics[eval_key]["confusion"], f"int8, {eval_key.split('_')[1]} set")
    (art / "metrics.json").write_text(json.dumps({"metrics": metrics, "parity": par}, indent=1))
    timings["total_s"] = time.monotonic() - t_start
    summary = {"bundle": str(out), "metrics": metrics, "parity": par, "history": history,
               "best_epoch": best_epoch, "timings": timings, "vocab": len(tok.vocab),
               "bundle_bytes": {f.name: f.stat().st_size for f in Path(out).iterdir()}}
    if cfg.mlflow:
        summary["mlflow_run_id"] = _mlflow(cfg, art, summary, manifest)
    # in-process callers (tests, benchmark) get the live objects too
    summary["objects"] = {"keras_model": model, "tokenizer": tok, "fp32": fp32, "int8": int8,
                          "test": test, "heldout": held}
    return summary


def _mlflow(cfg: TrainConfig, art: Path, summary: dict, manifest: dict) -> None:
    import mlflow

    from export.tracking import use_experiment
    use_experiment(cfg.mlflow_uri, "trey-compliance")
    with mlflow.start_run(run_name=f"{BUNDLE_NAME}-{cfg.version}-seed{cfg.seed}") as run:
        p = {k: v for k, v in asdict(cfg).items() if k not in ("extra", "key_path")}
        mlflow.log_params(p)
        for h in summary["history"]:
            mlflow.log_metrics({"loss": h["loss"], "accuracy": h["accuracy"], "val_loss": h["val_loss"],
                                "val_accuracy": h["val_accuracy"]}, step=h["epoch"])
        mlflow.log_metrics({"eval_loss": manifest["metrics"]["eval_loss"],
                            "eval_accuracy": manifest["metrics"]["eval_accuracy"]})
        for k, v in summary["metrics"].items():
            if "accuracy" in v:
                mlflow.log_metric(f"{k}.accuracy", v["accuracy"])
        mlflow.log_metrics({f"parity.{k}": v for k, v in summary["parity"].items()})
        mlflow.log_dict(summary["metrics"]["int8_heldout" if "int8_heldout" in summary["metrics"] else "int8_test"]["confusion"],
                        "confusion_matrix.json")
        for f in ("training_curves.png", "confusion_matrix.png", "history.json", "metrics.json"):
            mlflow.log_artifact(str(art / f))
        mlflow.log_artifacts(summary["bundle"], artifact_path="bundle")
    from export.registry import register_bundle
    summary["registered"] = f"trey-compliance/{register_bundle(summary['bundle'], 'compliance', run.info.run_id)}"
    return run.info.run_id
