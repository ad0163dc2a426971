"""Keras note classifier -> ONNX fp32 (tf2onnx) -> int8 dynamic quantization -> parity.

With Keras 3, `tf2onnx.convert.from_keras` fails; the model is wrapped in a `tf.function`
with an input signature and converted with `from_function`. Graph: input `tokens` int32
[batch, length] (pre-padded ids from agent/tokenizer.py; length = the note's bucket, any
length works), outputs the per-attribute head logits `year`, `material`, `condition`
float32 [batch, 3] (violates / complies / not_stated, agent/regulation.py) and `year_pos`
float32 [batch, length] (which token ends the manufacture year).
The older single-output export (`p_noncompliant` + `logit`) is kept for `export_fp32`."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

INPUT = "tokens"
OUTPUT = "p_noncompliant"
LOGIT = "logit"
OPSET = 17


def export_fp32(model, max_len: int) -> bytes:
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, max_len), tf.int32, name=INPUT),)

    # Besides the probability, expose the pre-sigmoid logit: occlusion explanations compare
    # logits, which keep their resolution where the float32 sigmoid saturates at 1.0.
    import keras
    features = keras.Model(model.inputs, model.get_layer("lstm").output)
    dense = model.get_layer(OUTPUT)

    @tf.function(input_signature=spec)
    def serve(tokens):
        logit = tf.matmul(features(tokens, training=False), dense.kernel) + dense.bias
        return {OUTPUT: tf.sigmoid(logit), LOGIT: logit}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=OPSET,
                                             output_path=None)
    return canonicalize(proto).SerializeToString()


HEADS = ("year", "material", "condition")
YEAR_POS = "year_pos"
GRAPH_FORM, LEAN = "trey.graph", "lean"       # model metadata: which form of the graph this is


def export_facts_fp32(model, lean: bool = True) -> bytes:
    """The fact model (train.build_model) -> fp32 ONNX with a dynamic length axis; `lean`:
    rebuilt with the fewest nodes (lean_facts_graph; the same output bits)."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, None), tf.int32, name=INPUT),)

    @tf.function(input_signature=spec)
    def serve(tokens):
        out = model(tokens, training=False)
        return {k: out[k] for k in (*HEADS, YEAR_POS)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=OPSET, output_path=None)
    canonical = canonicalize(proto).SerializeToString()
    if not lean:
        return canonical
    try:
        return lean_facts_graph(canonical)
    except ValueError as exc:             # another architecture (attention pooling): as converted
        import logging
        logging.getLogger(__name__).info("ONNX graph as tf2onnx wrote it: %s", exc)
        return canonical


def lean_facts_graph(model_bytes: bytes) -> bytes:
    """The max-pooled (Bi)LSTM fact graph rebuilt with the fewest nodes, from its own weights.

    tf2onnx writes Keras' generic graph: index arithmetic for negative token ids, shape
    arithmetic for the LSTM's zero initial state, a Slice + Squeeze per direction, and the
    per-step Dense layers as Reshape -> MatMul -> Reshape around a Transpose — 64 nodes
    (+ 8 weight DequantizeLinear in the int8 form), most of a one-note run's cost being
    ORT's per-node overhead, not arithmetic. The same function in 18 nodes (+ 6 weight
    DequantizeLinear in the int8 form): Gather on the
    transposed ids ([L, B, E] straight away), LSTM with its default zero state, one
    Transpose + Reshape for [forward, backward], max over steps and the last step, the three
    heads as ONE MatMul + Add + Split, the year pointer as MatMul over [L, B, 2H]. Every
    output element is the same float operations in the same order, so the outputs are the
    very same bits (tests/test_compliance_model.py; `trey-export bundle lean` checks it on
    real notes before it writes a bundle). Works on the float graph and on the weight-only
    int8 one (its DequantizeLinear nodes are kept; the heads' int8 weights, scales and
    biases are concatenated per output channel). Raises ValueError for any other graph."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load_from_string(model_bytes)
    if _is_lean(m):
        raise ValueError("the model is the lean graph already")
    g = m.graph
    prod = {o: n for n in g.node for o in n.output}
    init = {i.name: i for i in g.initializer}
    outs = [o.name for o in g.output]
    lstms = [n for n in g.node if n.op_type == "LSTM"]
    if (len(lstms) != 1 or [i.name for i in g.input] != [INPUT] or sorted(outs) != sorted((*HEADS, YEAR_POS))
            or not any(n.op_type == "ReduceMax" for n in g.node)):
        raise ValueError("not a max-pooled LSTM fact graph")
    lstm = lstms[0]

    def chain(name: str, ops: tuple) -> list:
        """The producers of `name` back through ops (first input each), or ValueError."""
        got = []
        for op in ops:
            n = prod.get(name)
            if n is None or n.op_type != op:
                raise ValueError(f"unexpected graph near {name!r}: {n.op_type if n else None} is not {op}")
            got.append(n)
            name = n.input[0]
        return got

    heads = {}
    for h in HEADS:
        add, mm = chain(h, ("Add", "MatMul"))
        heads[h] = (mm.input[1], add.input[1])
    _, add2, _, mm2, _, _, add1, _, mm1 = chain(YEAR_POS, ("Squeeze", "Add", "Reshape", "MatMul", "Reshape", "Tanh",
                                                           "Add", "Reshape", "MatMul"))
    _, emb = chain(lstm.input[0], ("Transpose", "Gather"))
    weights = [emb.input[0], *lstm.input[1:4], mm1.input[1], add1.input[1], mm2.input[1], add2.input[1]]
    # (sequence lengths would mask steps; the initial state tf2onnx computes is zeros, the
    # LSTM's default — same_outputs below proves it)
    if len(lstm.input) > 4 and lstm.input[4] or any(w not in init and w not in prod for w in weights):
        raise ValueError("unexpected LSTM sequence lengths or computed weights")
    # the three heads' weights side by side: one MatMul, then Split (per output channel, so the
    # int8 form keeps each column's scale)
    N = helper.make_node
    new_inits, nodes = [], []

    def arr(name: str) -> np.ndarray:
        if name not in init:
            raise ValueError(f"{name!r} is not a constant")
        return numpy_helper.to_array(init[name])

    hw = [heads[h][0] for h in HEADS]
    if all(w in init for w in hw):
        new_inits.append(numpy_helper.from_array(np.concatenate([arr(w) for w in hw], axis=1), "heads_w"))
    else:
        dqs = [prod.get(w) for w in hw]
        if not all(d is not None and d.op_type == "DequantizeLinear" and
                   {a.name: helper.get_attribute_value(a) for a in d.attribute}.get("axis") == 1 for d in dqs):
            raise ValueError("the heads' weights are neither constants nor per-channel int8")
        for k, suffix in enumerate(("q", "s", "z")):
            new_inits.append(numpy_helper.from_array(
                np.concatenate([arr(d.input[k]) for d in dqs], axis=-1), f"heads_w_{suffix}"))
        nodes.append(N("DequantizeLinear", ["heads_w_q", "heads_w_s", "heads_w_z"], ["heads_w"], axis=1,
                       name="heads_w_dq"))
    new_inits.append(numpy_helper.from_array(np.concatenate([arr(heads[h][1]) for h in HEADS]), "heads_b"))
    keep = [prod[w] for w in weights if w in prod]
    needed = set(weights) | {x for n in keep for x in n.input}
    new_inits = [i for i in g.initializer if i.name in needed] + new_inits
    new_inits += [numpy_helper.from_array(np.array([0, 0, -1], np.int64), "seq_shape"),
                  numpy_helper.from_array(np.array(-1, np.int64), "last_step"),
                  numpy_helper.from_array(np.array([2], np.int64), "axis_2")]
    lstm_attrs = {a.name: helper.get_attribute_value(a) for a in lstm.attribute}
    nodes = keep + nodes + [
        N("Transpose", [INPUT], ["ids_t"], perm=[1, 0]),
        N("Gather", [emb.input[0], "ids_t"], ["x"], axis=0),                   # [L, B, E]
        N("LSTM", ["x", *lstm.input[1:4]], ["y"], **lstm_attrs),               # [L, D, B, H]
        N("Transpose", ["y"], ["y_t"], perm=[0, 2, 1, 3]),                     # [L, B, D, H]
        N("Reshape", ["y_t", "seq_shape"], ["seq"]),                           # [L, B, D*H]: forward, backward
        N("ReduceMax", ["seq"], ["seq_max"], axes=[0], keepdims=0),
        N("Gather", ["seq", "last_step"], ["seq_last"], axis=0),
        N("Concat", ["seq_max", "seq_last"], ["pooled"], axis=1),
        N("MatMul", ["pooled", "heads_w"], ["heads_mm"]),
        N("Add", ["heads_mm", "heads_b"], ["heads"]),
        N("Split", ["heads"], list(HEADS), axis=1),
        N("MatMul", ["seq", mm1.input[1]], ["ptr_mm"]),
        N("Add", ["ptr_mm", add1.input[1]], ["ptr_b"]),
        N("Tanh", ["ptr_b"], ["ptr_h"]),
        N("MatMul", ["ptr_h", mm2.input[1]], ["score_mm"]),
        N("Add", ["score_mm", add2.input[1]], ["score"]),                      # [L, B, 1]
        N("Squeeze", ["score", "axis_2"], ["score_lb"]),
        N("Transpose", ["score_lb"], [YEAR_POS], perm=[1, 0]),
    ]
    for i, n in enumerate(nodes):
        n.name = n.name or f"n{i}_{n.op_type}"
    graph = helper.make_graph(nodes, g.name, list(g.input), list(g.output), new_inits)
    out = helper.make_model(graph, opset_imports=list(m.opset_import), ir_version=m.ir_version,
                            producer_name=m.producer_name, producer_version=m.producer_version)
    helper.set_model_props(out, {GRAPH_FORM: LEAN})
    onnx.checker.check_model(out)
    lean = out.SerializeToString()
    table = emb.input[0] if emb.input[0] in init else prod[emb.input[0]].input[0]
    if not same_outputs(model_bytes, lean, arr(table).shape[0]):
        raise ValueError("the rebuilt graph does not give the same outputs")
    return lean


def _is_lean(model) -> bool:
    return {p.key: p.value for p in model.metadata_props}.get(GRAPH_FORM) == LEAN


def graph_info(model_bytes: bytes, shipped: bytes | None = None) -> dict:
    """The manifest's `model.graph`: which form `model_bytes` is (lean_facts_graph's or
    tf2onnx's as converted) and how many nodes the shipped model (its int8 form; default:
    the same bytes) has."""
    import onnx
    form = "lean (export/compliance/onnx_export.lean_facts_graph)" if _is_lean(onnx.load_from_string(model_bytes)) \
        else "tf2onnx"
    return {"form": form, "nodes": len(onnx.load_from_string(shipped or model_bytes).graph.node)}


def same_outputs(a: bytes, b: bytes, vocab: int, rows=None) -> bool:
    """Do two fact graphs give bit-identical outputs, in a batch and for its first row alone —
    on `rows` ({length: int32 [n, length]}), else on random ids < vocab of several lengths?"""
    sa, sb = session(a), session(b)
    if rows is None:
        rng = np.random.default_rng(0)
        rows = {L: rng.integers(0, max(vocab, 4), (n, L)).astype(np.int32) for L, n in ((1, 2), (16, 5), (37, 1), (96, 9))}
    names = [o.name for o in sa.get_outputs()]
    for x in rows.values():
        for part in (x, x[:1]):
            ra, rb = sa.run(names, {INPUT: part}), sb.run(names, {INPUT: part})
            if not all(u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v) for u, v in zip(ra, rb)):
                return False
    return True


def predict_facts(sess, groups: dict) -> dict:
    """{length: array [n, length]} -> {length: {output: array}} (one ORT run per bucket)."""
    name = sess.get_inputs()[0].name
    outs = [o.name for o in sess.get_outputs()]
    res = {}
    for L, x in groups.items():
        vals = sess.run(outs, {name: np.asarray(x, np.int32)})
        res[L] = dict(zip(outs, vals))
    return res


def canonicalize(model):
    """Rename every node, initializer and intermediate tensor by its position in the
    (already topologically ordered) graph. tf2onnx's names carry process-global counters
    (e.g. const_fold_opt__87 vs __88 from one run to the next), so without this the same
    seed gives identical weights but different .onnx bytes."""
    g = model.graph
    if any(a.type in (5, 10) for n in g.node for a in n.attribute):   # GRAPH / GRAPHS
        return model                       # subgraphs (Loop/If) would need scoped renaming
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    names: dict[str, str] = {}

    def new(old: str) -> str:
        if not old or old in keep:
            return old
        if old not in names:
            names[old] = f"t{len(names)}"
        return names[old]

    for n in g.node:
        for i, x in enumerate(n.input):
            n.input[i] = new(x)
        for i, x in enumerate(n.output):
            n.output[i] = new(x)
    for i, n in enumerate(g.node):
        n.name = f"n{i}_{n.op_type}"
    for init in g.initializer:
        init.name = new(init.name)
    for vi in g.value_info:
        vi.name = new(vi.name)
    inits = sorted(g.initializer, key=lambda t: int(t.name[1:]) if t.name[1:].isdigit() else -1)
    del g.initializer[:]
    g.initializer.extend(inits)
    g.name = "compliance"
    g.doc_string = ""                      # "converted from __inference_serve_<counter>"
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        for j, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_param"):
                d.dim_param = "batch" if j == 0 else f"d{j}"      # tf2onnx: unk__<counter>
    return model


# The int8 forms train.choose_quantization picks from, in order of preference on a tie:
# - "weights": every weight matrix int8 (per output channel), activations float. ORT folds
#   the DequantizeLinear of each constant at load (agent/classify.py turns its QDQ fusion
#   off), so a note costs what the float model costs. Its point: a note's result does not
#   depend on the other notes in the same run. Dynamic int8 scales each run's activations by
#   that run's largest value, so a note's logits moved by up to ~0.35 with its batch-mates
#   (and `why`'s occlusion variants moved each other).
# - dynamic int8 over every supported op (embedding table too), over the LSTM and Dense
#   weights, or over the LSTM weights only.
QUANT_OPS = {"weights": "W8A32", "all": None, "lstm+matmul": ["LSTM", "MatMul"], "lstm": ["LSTM"]}
# which input of an op is its weight matrix -> the axis of its output channels
_WEIGHT_INPUTS = {("Gather", 0): 0, ("MatMul", 1): 1, ("Gemm", 1): 1, ("LSTM", 1): 1, ("LSTM", 2): 1}


def quantize_weights_int8(fp32: bytes) -> bytes:
    """Weight-only int8: each weight matrix (embedding table, LSTM W/R, Dense kernels)
    becomes int8 with one symmetric scale per output channel, behind a DequantizeLinear."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load_from_string(fp32)
    g = m.graph
    axis_of: dict[str, int] = {}
    for n in g.node:
        for i, x in enumerate(n.input):
            if (n.op_type, i) in _WEIGHT_INPUTS:
                axis_of.setdefault(x, _WEIGHT_INPUTS[(n.op_type, i)])
    inits, dq = [], []
    for init in g.initializer:
        a = numpy_helper.to_array(init)
        axis = axis_of.get(init.name)
        if axis is None or a.dtype != np.float32 or a.ndim < 2:
            inits.append(init)
            continue
        scale = np.max(np.abs(a), axis=tuple(i for i in range(a.ndim) if i != axis)) / 127.0
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        shape = [1] * a.ndim
        shape[axis] = -1
        q = np.clip(np.rint(a / scale.reshape(shape)), -127, 127).astype(np.int8)
        inits += [numpy_helper.from_array(q, init.name + "_q"), numpy_helper.from_array(scale, init.name + "_s"),
                  numpy_helper.from_array(np.zeros(scale.shape, np.int8), init.name + "_z")]
        dq.append(helper.make_node("DequantizeLinear", [init.name + "_q", init.name + "_s", init.name + "_z"],
                                   [init.name], axis=axis, name=init.name + "_dq"))
    del g.initializer[:]
    g.initializer.extend(inits)
    nodes = dq + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(m)
    return m.SerializeToString()


def quantize_int8(fp32: bytes, ops: str = "all") -> bytes:
    """One of QUANT_OPS. Dynamic quantization: int8 weights, activations quantized on the
    fly — no calibration set needed; shrinks the covered weights ~4x."""
    if ops == "weights":
        return quantize_weights_int8(fp32)
    from onnxruntime.quantization import QuantType, quantize_dynamic
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        src.write_bytes(fp32)
        kw = {} if QUANT_OPS[ops] is None else {"op_types_to_quantize": QUANT_OPS[ops]}
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, **kw)
        return dst.read_bytes()


def session(model_bytes: bytes, threads: int = 1):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.disable_quant_qdq", "1")    # as the car: fold weight-only int8
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def predict(sess, ids: np.ndarray, batch: int = 2048) -> np.ndarray:
    name = sess.get_inputs()[0].name
    out = [sess.run([OUTPUT], {name: ids[i:i + batch].astype(np.int32)})[0].reshape(-1)
           for i in range(0, len(ids), batch)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def parity(keras_p: np.ndarray, fp32_p: np.ndarray, int8_p: np.ndarray) -> dict:
    """Probability errors and label agreement on the same notes (threshold 0.5)."""
    k, f, q = (keras_p >= 0.5), (fp32_p >= 0.5), (int8_p >= 0.5)
    return {"n": int(len(keras_p)),
            "fp32_vs_keras_max_abs_prob_err": float(np.max(np.abs(fp32_p - keras_p))),
            "fp32_vs_keras_label_agreement": float(np.mean(k == f)),
            "int8_vs_keras_max_abs_prob_err": float(np.max(np.abs(int8_p - keras_p))),
            "int8_vs_keras_mean_abs_prob_err": float(np.mean(np.abs(int8_p - keras_p))),
            "int8_vs_keras_label_agreement": float(np.mean(k == q)),
            "int8_vs_fp32_label_agreement": float(np.mean(f == q))}
