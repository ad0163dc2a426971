"""torch -> ONNX fp32 -> ONNX Runtime dynamic int8 quantization -> parity check.

The graph: inputs `window` [batch, W, F] float32 and `level` [batch, 1] float32, output
`forecast` [batch, 30] daily cycles (batch is dynamic)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

INPUTS = ("window", "level")
OUTPUT = "forecast"


def export_fp32(model: torch.nn.Module, window: int, n_features: int) -> bytes:
    model.eval()
    x = torch.zeros(2, window, n_features)
    lv = torch.ones(2, 1)
    buf = io.BytesIO()
    torch.onnx.export(model, (x, lv), buf, input_names=list(INPUTS), output_names=[OUTPUT],
                      dynamic_axes={"window": {0: "batch"}, "level": {0: "batch"}, OUTPUT: {0: "batch"}},
                      opset_version=17, dynamo=False)
    return buf.getvalue()


def quantize_int8(fp32: bytes) -> bytes:
    """Dynamic (weight-only int8, activations quantized on the fly) — no calibration data
    needed and the right fit for small LSTM/MatMul graphs on CPU."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        src.write_bytes(fp32)
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        return dst.read_bytes()


def session(model_bytes: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, x: np.ndarray, level: np.ndarray, batch: int = 4096) -> np.ndarray:
    out = [sess.run(None, {"window": x[i:i + batch], "level": level[i:i + batch]})[0]
           for i in range(0, len(x), batch)]
    return np.maximum(np.concatenate(out), 0.0)


def alerts(pred: np.ndarray, lifetime: np.ndarray, rated: np.ndarray) -> np.ndarray:
    return lifetime + pred.sum(1) >= rated


def parity(torch_pred: np.ndarray, fp32_pred: np.ndarray, int8_pred: np.ndarray,
           lifetime: np.ndarray, rated: np.ndarray) -> dict:
    """Max errors and alert-decision agreement on the same (validation) windows."""
    a_t, a_f, a_q = (alerts(p, lifetime, rated) for p in (torch_pred, fp32_pred, int8_pred))
    return {
        "n_windows": int(len(torch_pred)),
        "fp32_vs_torch_max_abs_err": float(np.max(np.abs(fp32_pred - torch_pred))),
        "int8_vs_fp32_max_abs_err": float(np.max(np.abs(int8_pred - fp32_pred))),
        "int8_vs_fp32_mean_abs_err": float(np.mean(np.abs(int8_pred - fp32_pred))),
        "int8_vs_fp32_sum30_max_abs_err": float(np.max(np.abs(int8_pred.sum(1) - fp32_pred.sum(1)))),
        "fp32_vs_torch_alert_agreement": float(np.mean(a_t == a_f)),
        "int8_vs_fp32_alert_agreement": float(np.mean(a_f == a_q)),
        "n_alerts_fp32": int(a_f.sum()),
    }
