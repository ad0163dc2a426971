"""Keras Embedding -> LSTM -> one head per fact (year / material / condition: violates,
complies or not stated) + a year pointer -> signed int8 ONNX bundle. The verdict is not
learned: agent/regulation.py computes it from the heads.

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
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from agent import regulation as R
from agent.tokenizer import MAX_NOTE_CHARS, RESERVED, Tokenizer, words, year_value
from export.compliance import corpus as C

log = logging.getLogger(__name__)
BUNDLE_NAME = "compliance"


@dataclass
class TrainConfig:
    out: str = "agent/models/compliance"
    artifacts: str = "artifacts/compliance"
    data: str | None = None               # notes.jsonl from `trey-export data compliance`
    notes: int = 50000                    # generated when data is None (classic + field-style)
    field_frac: float = 0.6               # share of field-style notes (export/compliance/field_notes.py)
    heldout_notes: int = 4000
    holdout: bool = True                  # exclude HOLDOUT_STYLES/YEARS from training
    seed: int = 8                         # the shipped bundle's (2.3.0; seed 7 of the same code: README)
    max_len: int = 16                     # the first (shortest) bucket
    # padded lengths: a note costs about its own length (a short note 16-32 steps instead of
    # a fixed 48), the last one holds a 2,000-character note
    buckets: tuple = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
    year_grain: int = 5                   # agent/tokenizer.py: 5 = half-decade buckets, 1 = digits
    normalize: tuple = ("arrows", "contractions", "copula", "references")   # agent/tokenizer.py NORMALIZERS
    # agent/tokenizer.py: how a typo finds its word. "edit1" (one true edit; bundle 2.3.0 on)
    # rather than "delete1" (any word sharing a one-letter delete: "fibr" read as "fair")
    fuzzy_match: str = "edit1"
    min_p_complies: float = R.MIN_P_COMPLIES      # agent/regulation.read_fact, written to the manifest
    emb: int = 32
    units: int = 48                       # per direction
    bidirectional: bool = True
    pool: str = "max"                     # build_model: what each head reads ("max" or "attention")
    word_dropout: float = 0.2             # non-fact words -> <unk> at random while training
    min_count: int = 5                    # rarer words (one-off typos) are left to the fuzzy lookup
    lr: float = 2e-3
    batch: int = 64
    max_epochs: int = 30
    patience: int = 3
    time_budget_s: float = 1800.0         # stop training (best weights kept) past this
    threads: int = 2
    version: str = "2.3.0"
    mlflow: bool = True
    mlflow_uri: str | None = None         # None = local store ./mlruns/mlflow.db (sqlite)
    key_path: str | None = None
    progress: bool = False
    handwritten: str | None = "default"   # hand-written held-out notes (export/compliance/data); None = skip
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


HEADS = R.ATTRIBUTES
STATE_ID = {s: i for i, s in enumerate(R.STATES)}


def build_model(vocab_size: int, emb: int = 32, units: int = 64, lr: float = 2e-3, bidirectional: bool = True,
                pool: str = "max"):
    """Embedding -> (bidirectional) LSTM over every step -> one 3-way head per attribute,
    and a year pointer (a score per step: which token ends the manufacture year). Any input
    length (the tokenizer's buckets). Why bidirectional: whether a material is the current
    one depends on what follows it ("plastic cover replaced with steel").
    What a head reads (`pool`):
    - "max": [max over steps, last step], shared by the three heads;
    - "attention": per head, a weighted sum of the steps (a learned score per step, softmax
      over the note's own steps, padding masked) next to the last step. Why: a max over 300
      steps of narrative picks up whatever unfamiliar words happen to fire, while a
      softmax that scores narrative low leaves the fact's steps their weight at any length."""
    if pool not in ("max", "attention"):
        raise ValueError(f"pool must be 'max' or 'attention', not {pool!r}")
    tf = _tf(1)
    keras = tf.keras
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab_size, emb, name="embedding")(inp)
    lstm = keras.layers.LSTM(units, dropout=0.2, return_sequences=True, name="lstm")
    seq = keras.layers.Bidirectional(lstm, name="bilstm")(x) if bidirectional else lstm(x)
    last = seq[:, -1, :]
    if pool == "max":
        pooled = keras.layers.Concatenate(name="pooled")([keras.layers.GlobalMaxPooling1D(name="maxpool")(seq), last])
        feats = {h: pooled for h in HEADS}
    else:
        pad = keras.ops.cast(keras.ops.equal(inp, 0), "float32") * -1e4
        feats = {}
        for h in HEADS:
            hid = keras.layers.Dense(32, activation="tanh", name=f"{h}_att_step")(seq)
            a = keras.ops.softmax(keras.ops.squeeze(keras.layers.Dense(1, name=f"{h}_att")(hid), -1) + pad, axis=-1)
            ctx = keras.ops.sum(seq * keras.ops.expand_dims(a, -1), axis=1)
            feats[h] = keras.layers.Concatenate(name=f"{h}_read")([ctx, last])
    outs = {h: keras.layers.Dense(3, name=h)(feats[h]) for h in HEADS}
    score = keras.layers.Dense(1, name="ptr_score")(keras.layers.Dense(32, activation="tanh", name="ptr_step")(seq))
    outs["year_pos"] = keras.ops.squeeze(score, -1)
    model = keras.Model(inp, outs)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss={k: ce for k in outs},
                  loss_weights={**{h: 1.0 for h in HEADS}, "year_pos": 0.5})
    return model


def load_notes(path: str | Path) -> list[dict]:
    p = Path(path)
    if p.is_dir():
        p = p / "notes.jsonl"
    with open(p, encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh if line.strip()]
    for r in recs:                          # older files: binary label + canonical facts only
        if "states" not in r:
            r.update(C.fact_fields(r["year"], r["material"], r["condition"]))
    return recs


def make_corpus(cfg: TrainConfig) -> tuple[list[dict], dict[str, list[dict]]]:
    """(training-distribution notes, {held-out set name: notes}). Held out: the classic
    generator's unseen styles/years (`classic`), the second author's field notes
    (`author`, export/compliance/heldout_author.py) and the hand-written file (`handwritten`)."""
    from export.compliance import field_notes as F
    from export.compliance import heldout_author as HA
    if cfg.data:
        allnotes = load_notes(cfg.data)
        if not cfg.holdout:
            return allnotes, {}
        train, held = C.split_train_holdout(allnotes)
        return train, {"classic": held}
    styles = [s for s in C.STYLES if not (cfg.holdout and s in C.HOLDOUT_STYLES)]
    years = [y for y in range(C.YEAR_MIN, C.YEAR_MAX + 1) if not (cfg.holdout and y in C.HOLDOUT_YEARS)]
    n_field = int(cfg.notes * cfg.field_frac)
    train = C.NoteGenerator(cfg.seed, styles=styles, years=years).notes(cfg.notes - n_field)
    sr = random.Random(cfg.seed + 2)
    for rec in train:                       # a third of the classic notes: narrative words inside
        if sr.random() < 0.33:
            rec["text"] = F.sprinkle(rec["text"], sr)[:MAX_NOTE_CHARS]
    train += F.FieldNoteGenerator(cfg.seed + 1, years=years).notes(n_field)
    train = [r for r in train if _year_readable(r, cfg)]
    if not cfg.holdout:
        return train, {}
    gen = C.NoteGenerator(cfg.seed + 10007, remarks=C.REMARKS_HOLDOUT)
    held = []
    third = cfg.heldout_notes // 3
    held += [gen.note(style=gen.r.choice(C.HOLDOUT_STYLES)) for _ in range(third)]       # unseen style
    gen.years = list(C.HOLDOUT_YEARS)
    held += [gen.note() for _ in range(third)]                                           # unseen year
    held += [gen.note(style=gen.r.choice(C.HOLDOUT_STYLES)) for _ in range(cfg.heldout_notes - 2 * third)]
    sets = {"classic": held, "author": HA.AuthorNoteGenerator(cfg.seed + 20011).notes(cfg.heldout_notes)}
    if cfg.handwritten:
        path = HA.HANDWRITTEN if cfg.handwritten == "default" else Path(cfg.handwritten)
        if Path(path).exists():
            sets["handwritten"] = HA.load_handwritten(path)
    return train, sets


def _year_readable(rec: dict, cfg: TrainConfig) -> bool:
    """False for a generated note whose manufacture year the tokenizer reads as a reference
    (the generators' sprinkled narrative words can land between a cue and its year: "yr stock
    2015", "built tag 1996"): its label would say a year the model is never shown (~13 in
    20,000 notes with "references")."""
    yv = rec.get("year_value")
    if yv is None or "references" not in cfg.normalize:
        return True
    return any(len(toks) > 1 and year_value(s) == yv for s, toks in words(rec["text"], cfg.year_grain, cfg.normalize))


def split(records: list[dict], seed: int, frac=(0.8, 0.1)) -> tuple[list, list, list]:
    idx = np.random.default_rng(seed).permutation(len(records))
    a, b = int(len(idx) * frac[0]), int(len(idx) * (frac[0] + frac[1]))
    pick = lambda ix: [records[i] for i in ix]  # noqa: E731
    return pick(idx[:a]), pick(idx[a:b]), pick(idx[b:])


def year_target(tok: Tokenizer, rec: dict) -> int:
    """Position (in the padded row) of the last token of the manufacture-year word, -1 if
    the note states no year (or it was cut off)."""
    yv = rec.get("year_value")
    if yv is None:
        return -1
    groups = tok.word_ids(rec["text"])
    n = sum(len(ids) for _, ids in groups)
    pos = tok.padded_len(n) - n
    for surface, ids in groups:
        pos += len(ids)
        y = year_value(surface) if len(ids) > 1 else None      # (a reference number reads one <num>)
        if y is not None and (y == yv or (surface.isdigit() and len(surface) == 4 and int(surface) == yv)):
            return pos - 1
    return -1


def encode(tok: Tokenizer, recs: list[dict]) -> dict[int, dict]:
    """{padded length: {"idx", "x", "y": {head: state ids, "year_pos"}, "w": {"year_pos"}}}."""
    out = {}
    for L, (idx, rows) in tok.encode_groups([r["text"] for r in recs]).items():
        sel = [recs[i] for i in idx]
        y = {h: np.asarray([STATE_ID[r["states"][h]] for r in sel], np.int32) for h in HEADS}
        yp = np.asarray([year_target(tok, r) for r in sel], np.int32)
        out[L] = {"idx": np.asarray(idx), "x": np.asarray(rows, np.int32),
                  "y": {**y, "year_pos": np.maximum(yp, 0)},
                  "w": {**{h: np.ones(len(sel), np.float32) for h in HEADS},
                        "year_pos": (yp >= 0).astype(np.float32)}}
    return out


# Words a fact or its negation/replacement hangs on: never dropped by word dropout.
KEEP_WORDS = ("not", "no", "was", "were", "is", "now", "replaced", "replacement", "replace", "swapped", "swap",
              "original", "originally", "old", "record", "said", "but", "by", "with", "for", "one", "ones",
              "previously", "before", "instead", "new", "fitted", "removed", "s", "the",
              # what makes a year-like number NOT the manufacture year (field_notes.DISTRACTORS):
              # dropping these would teach that a year after an unknown word may be a distractor
              "job", "pn", "odometer", "invoice", "ticket", "ref", "bay", "slot", "work", "order", "miles",
              "km", "mi", "mileage", "clock", "on",
              # replacement/negation/unknown wording of field_notes.REPLACED / NEGATED / UNSTATED
              "to", "from", "instead", "rather", "than", "never", "longer", "previously", "unknown", "n", "a",
              "now", "gone", "scrap", "failed", "actually", "wrongly", "listed", "recorded", "system")


def keep_ids(tok: Tokenizer) -> np.ndarray:
    """Boolean per vocabulary id: protected from word dropout (fact words, year buckets,
    negation/replacement words, padding/<unk>)."""
    keep = np.zeros(len(tok.vocab), bool)
    keep[:len(RESERVED)] = True
    from export.compliance.field_notes import DISTRACTOR_WORDS
    fact_words = {w for forms in (*C.MATERIALS.values(), *C.CONDITIONS.values()) for f in forms
                  for _, toks in words(f) for w in toks} | set(KEEP_WORDS) | set(DISTRACTOR_WORDS)
    for w in fact_words:
        if w in tok.index:
            keep[tok.index[w]] = True
    return keep


def _dataset(tf, enc: dict, batch: int, seed: int, shuffle: bool, keep=None, word_dropout: float = 0.0):
    parts = []
    for L in sorted(enc):
        g = enc[L]
        parts.append(tf.data.Dataset.from_tensor_slices((g["x"], g["y"], g["w"])).batch(batch))
    ds = parts[0]
    for p in parts[1:]:
        ds = ds.concatenate(p)
    if shuffle:
        nb = sum(int(np.ceil(len(g["x"]) / batch)) for g in enc.values())
        ds = ds.shuffle(nb, seed=seed, reshuffle_each_iteration=True)
    if word_dropout > 0 and keep is not None:
        # Word dropout: other words -> <unk> at random, so the heads read the facts, not the
        # wording around them (a phrasing never seen in training reads as <unk> words).
        kv = tf.constant(keep)

        def drop(x, y, w):
            r = tf.random.uniform(tf.shape(x), seed=seed)
            hit = (r < word_dropout) & ~tf.gather(kv, x)
            return tf.where(hit, tf.ones_like(x), x), y, w
        ds = ds.map(drop, deterministic=True)
    return ds.prefetch(2)


def fit(cfg: TrainConfig, tok: Tokenizer, train, val):
    tf = _tf(cfg.threads)
    keras = tf.keras
    keras.utils.set_random_seed(cfg.seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # noqa: BLE001 - older TF: seeds alone
        pass
    model = build_model(len(tok.vocab), cfg.emb, cfg.units, cfg.lr, cfg.bidirectional, cfg.pool)
    dt = _dataset(tf, encode(tok, train), cfg.batch, cfg.seed, True, keep_ids(tok), cfg.word_dropout)
    dv = _dataset(tf, encode(tok, val), 512, cfg.seed, False)
    t0 = time.monotonic()

    class Budget(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if cfg.progress:
                log.warning("epoch %d %.0fs %s", epoch + 1, time.monotonic() - t0,
                            {k: round(float(v), 4) for k, v in (logs or {}).items() if k.endswith("loss")})
            if time.monotonic() - t0 > cfg.time_budget_s:
                log.warning("time budget %.0fs reached after epoch %d", cfg.time_budget_s, epoch + 1)
                self.model.stop_training = True

    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)
    # the validation loss is noisy at lr 2e-3 late in training: halve it when it stalls
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-4)
    hist = model.fit(dt, validation_data=dv, epochs=cfg.max_epochs, verbose=0, callbacks=[stop, plateau, Budget()])
    h = hist.history
    history = [{"epoch": i + 1, "loss": float(h["loss"][i]), "val_loss": float(h["val_loss"][i])}
               for i in range(len(h["loss"]))]
    best = int(np.argmin(h["val_loss"])) + 1
    return model, history, best, time.monotonic() - t0


def keras_predict(model, enc: dict, n: int) -> list[dict]:
    """Per note (input order): {head: logits[3], "year_pos": logits[L]}."""
    out: list = [None] * n
    for L, g in enc.items():
        # a direct call, not model.predict: predict compiles a new function per bucket length
        for i in range(0, len(g["x"]), 512):
            res = {o: np.asarray(v) for o, v in model(g["x"][i:i + 512], training=False).items()}
            for j, k in enumerate(g["idx"][i:i + 512]):
                out[k] = {o: res[o][j] for o in res}
    return out


def onnx_predict(sess, enc: dict, n: int) -> list[dict]:
    from export.compliance import onnx_export as OX
    res = OX.predict_facts(sess, {L: g["x"] for L, g in enc.items()})
    out: list = [None] * n
    for L, g in enc.items():
        for j, k in enumerate(g["idx"]):
            out[k] = {o: res[L][o][j] for o in res[L]}
    return out


def _decide(pred: dict, min_p: float = 0.5, has_year: bool = True) -> tuple[dict, str]:
    """The car's reading of the heads (agent/regulation.read_fact), then the rule."""
    from agent.classify import _softmax
    st = {h: R.read_fact(h, _softmax(np.asarray(pred[h], np.float64)), min_p, has_year) for h in HEADS}
    return st, R.verdict(st)


def has_years(tok: Tokenizer, recs: list[dict]) -> list[bool]:
    from agent.classify import year_positions
    return [bool(year_positions(tok, r["text"])) for r in recs]


def choose_quantization(fp32: bytes, model, tok: Tokenizer, val: list[dict], min_p: float) -> tuple[str, bytes, dict]:
    """The int8 form (export/compliance/onnx_export.QUANT_OPS) whose fact states agree best
    with Keras on the VALIDATION notes (never the held-out sets); on a tie the one first in
    QUANT_OPS (batch-independent weight-only int8 first, then the more compact).
    (A bar such as ">= 99.9 % on validation" picked the most compact form whose held-out
    agreement then fell below it: the best-agreeing form is the one that holds up.)"""
    from export.compliance import onnx_export as OX
    enc = encode(tok, val)
    pk = keras_predict(model, enc, len(val))
    hy = has_years(tok, val)
    ref = [_decide(a, min_p, y)[0] for a, y in zip(pk, hy)]
    report, best = {}, None
    for name in OX.QUANT_OPS:                       # in order of preference: ">" keeps it on a tie
        q = OX.quantize_int8(fp32, name)
        p8 = onnx_predict(OX.session(q), enc, len(val))
        ag = sum(_decide(c, min_p, y)[0] == s for c, y, s in zip(p8, hy, ref)) / max(len(val), 1)
        report[name] = {"val_heads_agreement": ag, "bytes": len(q)}
        if best is None or ag > best[2]:
            best = (name, q, ag)
    log.info("quantization: %s (%s)", best[0], report)
    return best[0], best[1], report


def _metrics(recs: list[dict], preds: list[dict], tok: Tokenizer, min_p: float = 0.5) -> dict:
    """Verdict accuracy, per-head accuracy, undetermined called compliant, year value."""
    n = len(recs)
    right = und_as_comp = 0
    head_ok = {h: 0 for h in HEADS}
    conf = {a: {b: 0 for b in R.VERDICTS} for a in R.VERDICTS}
    yv_n = yv_ok = 0
    by_phen: dict[str, list[int]] = {}
    for r, p, hy in zip(recs, preds, has_years(tok, recs)):
        st, v = _decide(p, min_p, hy)
        ok = v == r["verdict"]
        right += ok
        conf[r["verdict"]][v] += 1
        und_as_comp += r["verdict"] != "compliant" and v == "compliant"
        for h in HEADS:
            head_ok[h] += st[h] == r["states"][h]
        for ph in r.get("phenomena") or [r.get("style", "classic")]:
            c = by_phen.setdefault(ph, [0, 0])
            c[0] += ok
            c[1] += 1
        if r.get("year_value") is not None and st["year"] != R.NOT_STATED:
            t = year_target(tok, r)
            if t >= 0:
                yv_n += 1
                L = len(p["year_pos"])
                yv_ok += int(np.argmax(_mask_years(tok, r["text"], p["year_pos"], L))) == t
    return {"n": n, "accuracy": right / max(n, 1), "heads": {h: c / max(n, 1) for h, c in head_ok.items()},
            "noncompliant_or_undetermined_called_compliant": int(und_as_comp),
            "year_value_accuracy": yv_ok / yv_n if yv_n else None, "confusion": conf,
            "by_category": {k: {"n": c[1], "accuracy": c[0] / c[1]} for k, c in sorted(by_phen.items())}}


def _mask_years(tok: Tokenizer, text: str, scores, L: int):
    from agent.classify import year_positions
    m = np.full(L, -np.inf)
    for _, pos in year_positions(tok, text):
        m[pos] = scores[pos]
    return m


def _plots(art: Path, history: list[dict], confusion: dict, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(ep, [h["loss"] for h in history], label="train")
    ax.plot(ep, [h["val_loss"] for h in history], label="validation")
    ax.set_title("loss (3 heads + year pointer)")
    ax.set_xlabel("epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(art / "training_curves.png", dpi=90)
    plt.close(fig)
    V = R.VERDICTS
    m = np.array([[confusion[a][b] for b in V] for a in V])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(m, cmap="Blues")
    for i in range(3):
        for j in range(3):
            ax.text(j, i, str(m[i, j]), ha="center", va="center")
    ax.set_xticks(range(3), V, rotation=20)
    ax.set_yticks(range(3), V)
    ax.set_xlabel("predicted verdict")
    ax.set_ylabel("true verdict")
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
    buckets = tuple(b for b in cfg.buckets if b > cfg.max_len)
    tok = Tokenizer.fit([r["text"] for r in train], year_grain=cfg.year_grain, buckets=(cfg.max_len, *buckets),
                        min_count=cfg.min_count, normalize=cfg.normalize, fuzzy_match=cfg.fuzzy_match)
    timings["corpus_s"] = time.monotonic() - t_start

    model, history, best_epoch, timings["fit_s"] = fit(cfg, tok, train, val)

    t = time.monotonic()
    fp32 = OX.export_facts_fp32(model)
    mp = cfg.min_p_complies
    quant, int8, quant_report = choose_quantization(fp32, model, tok, val, mp)
    s32, s8 = OX.session(fp32), OX.session(int8)
    sets = {"test": test, **held}
    metrics, preds = {}, {}
    agree = {"n": 0, "fp32_verdict": 0, "int8_verdict": 0, "int8_heads": 0, "fp32_max_abs_logit_err": 0.0,
             "int8_max_abs_logit_err": 0.0}
    for name, recs in sets.items():
        if not recs:
            continue
        enc = encode(tok, recs)
        pk, p32, p8 = keras_predict(model, enc, len(recs)), onnx_predict(s32, enc, len(recs)), onnx_predict(s8, enc, len(recs))
        metrics[f"keras_{name}"] = _metrics(recs, pk, tok, mp)
        metrics[f"int8_{name}"] = _metrics(recs, p8, tok, mp)
        preds[name] = p8
        for a, b, c, hy in zip(pk, p32, p8, has_years(tok, recs)):
            agree["n"] += 1
            (sk, vk), v32, (s8_, v8) = _decide(a, mp, hy), _decide(b, mp, hy)[1], _decide(c, mp, hy)
            agree["fp32_verdict"] += vk == v32
            agree["int8_verdict"] += vk == v8
            agree["int8_heads"] += sk == s8_
            for h in HEADS:
                agree["fp32_max_abs_logit_err"] = max(agree["fp32_max_abs_logit_err"], float(np.max(np.abs(a[h] - b[h]))))
                agree["int8_max_abs_logit_err"] = max(agree["int8_max_abs_logit_err"], float(np.max(np.abs(a[h] - c[h]))))
    nn = max(agree["n"], 1)
    par = {"n": agree["n"], "fp32_vs_keras_verdict_agreement": agree["fp32_verdict"] / nn,
           "int8_vs_keras_verdict_agreement": agree["int8_verdict"] / nn,
           "int8_vs_keras_heads_agreement": agree["int8_heads"] / nn,
           "fp32_vs_keras_max_abs_logit_err": agree["fp32_max_abs_logit_err"],
           "int8_vs_keras_max_abs_logit_err": agree["int8_max_abs_logit_err"],
           "quantization": quant, "quantization_candidates": quant_report}
    timings["export_s"] = time.monotonic() - t
    errors = []
    for name, recs in sets.items():
        for r, p, hy in zip(recs, preds.get(name, []), has_years(tok, recs)):
            st, v = _decide(p, mp, hy)
            if v != r["verdict"]:
                errors.append({"set": name, "text": r["text"], "verdict": r["verdict"], "states": r["states"],
                               "predicted": v, "predicted_states": st})

    eval_keys = [k for k in ("int8_classic", "int8_author", "int8_handwritten") if k in metrics] or ["int8_test"]
    n_eval = sum(metrics[k]["n"] for k in eval_keys)
    eval_acc = sum(metrics[k]["accuracy"] * metrics[k]["n"] for k in eval_keys) / n_eval
    manifest = {
        "name": BUNDLE_NAME, "version": cfg.version, "kind": "note-fact-reader",
        "inputs": [{"name": OX.INPUT, "dtype": "int32", "shape": ["batch", "length"]}],
        "outputs": [{"name": h, "dtype": "float32", "shape": ["batch", 3], "classes": list(R.STATES)} for h in HEADS]
        + [{"name": OX.YEAR_POS, "dtype": "float32", "shape": ["batch", "length"]}],
        "preprocessing": {"tokenizer": tok.to_manifest()},
        "regulation": R.to_manifest(),
        "decision": {"verdict": "agent/regulation.py: non_compliant if any head says violates; compliant "
                                "only if all three say complies; else undetermined",
                     "min_p_complies": mp,
                     "fact": "agent/regulation.read_fact: complies only at p >= min_p_complies; no year in "
                             "the note -> year not stated",
                     "rule": R.TEXT},
        "model": {"architecture": f"Embedding({len(tok.vocab)},{cfg.emb}) -> {'Bidirectional ' if cfg.bidirectional else ''}"
                                  f"LSTM({cfg.units}, dropout 0.2, every step) -> "
                                  + ("[max over steps, last step] -> Dense(3) x 3 heads" if cfg.pool == "max" else
                                     "per head [attention over steps (Dense(32, tanh) -> Dense(1), softmax), last step]"
                                     " -> Dense(3)")
                                  + "; year pointer Dense(32, tanh) -> Dense(1) per step",
                  "pool": cfg.pool,
                  "graph": OX.graph_info(fp32, int8),
                  "framework": "keras -> tf2onnx (opset %d) -> int8 %s" % (
                      OX.OPSET, "weight-only (weights)" if quant == "weights" else f"onnxruntime dynamic ({quant})"),
                  "best_epoch": best_epoch, "epochs_run": len(history)},
        "training": {"seed": cfg.seed, "notes": len(train_all), "train": len(train), "val": len(val),
                     "test": len(test), "heldout": {k: len(v) for k, v in held.items()}, "data": cfg.data or "generated",
                     "field_frac": cfg.field_frac,
                     "holdout_styles": list(C.HOLDOUT_STYLES) if cfg.holdout else [],
                     "holdout_years": list(C.HOLDOUT_YEARS) if cfg.holdout else [],
                     "reproduce": f"trey-export train compliance --seed {cfg.seed} --notes {cfg.notes} --threads {cfg.threads} "
                                  f"--fuzzy-match {cfg.fuzzy_match} --normalize {' '.join(cfg.normalize)} --out {cfg.out}"},
        "metrics": {"eval_accuracy": eval_acc, "eval_sets": eval_keys,
                    "eval_loss": float(min(h["val_loss"] for h in history)),
                    **{k: {kk: vv for kk, vv in v.items() if kk != "confusion"} for k, v in metrics.items()}},
        "parity": par,
        "explanation": {"method": "occlusion: each word replaced by <unk>, change of each head's logit"},
    }
    out = build_bundle(cfg.out, int8, manifest, key_path=cfg.key_path)
    (art / "model_fp32.onnx").write_bytes(fp32)
    try:
        model.save(art / "model.keras")           # for the benchmark (Keras vs ONNX fp32 vs int8)
    except Exception as exc:  # noqa: BLE001 - the bundle is what matters
        log.warning("could not save the Keras model: %s", exc)
    (art / "history.json").write_text(json.dumps(history, indent=1))
    (art / "errors.jsonl").write_text("".join(json.dumps(e) + "\n" for e in errors[:1000]))
    _plots(art, history, metrics[eval_keys[0]]["confusion"], eval_keys[0])
    (art / "metrics.json").write_text(json.dumps({"metrics": metrics, "parity": par}, indent=1))
    timings["total_s"] = time.monotonic() - t_start
    summary = {"bundle": str(out), "metrics": metrics, "parity": par, "history": history,
               "best_epoch": best_epoch, "timings": timings, "vocab": len(tok.vocab), "eval_accuracy": eval_acc,
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
            mlflow.log_metrics({"loss": h["loss"], "val_loss": h["val_loss"]}, step=h["epoch"])
        mlflow.log_metrics({"eval_loss": manifest["metrics"]["eval_loss"],
                            "eval_accuracy": manifest["metrics"]["eval_accuracy"]})
        for k, v in summary["metrics"].items():
            if "accuracy" in v:
                mlflow.log_metric(f"{k}.accuracy", v["accuracy"])
        mlflow.log_metrics({f"parity.{k}": v for k, v in summary["parity"].items() if isinstance(v, (int, float))})
        mlflow.log_param("quantization", summary["parity"]["quantization"])
        mlflow.log_dict(summary["metrics"][manifest["metrics"]["eval_sets"][0]]["confusion"], "confusion_matrix.json")
        for f in ("training_curves.png", "confusion_matrix.png", "history.json", "metrics.json"):
            mlflow.log_artifact(str(art / f))
        mlflow.log_artifacts(summary["bundle"], artifact_path="bundle")
    from export.registry import register_bundle
    summary["registered"] = f"trey-compliance/{register_bundle(summary['bundle'], 'compliance', run.info.run_id)}"
    return run.info.run_id
