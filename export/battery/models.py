"""Forecasters with the exported graph's interface: forward(x [B,W,F], level [B,1]) ->
[B,H] daily cycles. Each predicts multiples of `level` (the last 28-day mean) as
1 + correction, so an untrained model *is* the naive baseline and training learns
departures from it (seasonality, trend, recent changes).

Direct multi-horizon (all 30 days in one pass) rather than recursive: no compounding of
errors over 30 steps, no need to feed back future trip features we do not know, and one
fixed-shape graph to export and quantize. (The original RNN predicted recursively.)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class LSTMForecaster(nn.Module):
    """Global LSTM: every battery's windows train one model.

    The LSTM reads the last `lstm_steps` days (recent dynamics: a usage change, the weekly
    rhythm); a linear "highway" (as in LSTNet) reads the last `highway_lags` days plus weekly
    means of the usage features over the whole window (the longer-term level and trend),
    which keeps the recurrent part short and cheap on the car. Both add to the ratio."""

    def __init__(self, n_features: int, hidden: int = 64, layers: int = 1, horizon: int = 30,
                 dropout: float = 0.0, window: int = 56, lstm_steps: int = 56, highway_lags: int = 28,
                 lstm_input: str = "daily"):
        super().__init__()
        lstm_steps, highway_lags = min(lstm_steps, window), min(highway_lags, window)
        self.config = {"kind": "lstm", "n_features": n_features, "hidden": hidden, "layers": layers,
                       "horizon": horizon, "dropout": dropout, "window": window, "lstm_steps": lstm_steps,
                       "highway_lags": highway_lags, "lstm_input": lstm_input}
        self.window, self.lstm_steps, self.highway_lags = window, lstm_steps, highway_lags
        self.lstm_input = lstm_input
        self.weeks = window // 7
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        # the head also sees the last day's raw features (calendar position, level)
        self.head = nn.Sequential(nn.Linear(hidden + n_features, hidden), nn.ReLU(),
                                  nn.Linear(hidden, horizon))
        self.highway = nn.Linear(highway_lags * n_features + self.weeks * 3, horizon)
        for layer in (self.head[-1], self.highway):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def highway_inputs(self, x: torch.Tensor) -> torch.Tensor:
        weekly = x[:, self.window - 7 * self.weeks:, :3].reshape(-1, self.weeks, 7, 3).mean(dim=2)
        return torch.cat([x[:, -self.highway_lags:, :].flatten(1), weekly.flatten(1)], dim=1)

    @torch.no_grad()
    def warm_start(self, x: np.ndarray, level: np.ndarray, y: np.ndarray, alpha: float = 100.0) -> None:
        """Set the highway to the weighted ridge solution (closed form) and freeze it: the
        linear part is solved exactly, the LSTM + head then learn only what it misses."""
        from sklearn.linear_model import Ridge
        z = torch.cat([self.highway_inputs(torch.from_numpy(x[i:i + 8192])) for i in range(0, len(x), 8192)])
        lv = level[:, 0].astype(np.float64)
        r = Ridge(alpha=alpha).fit(z.numpy(), y / lv[:, None] - 1.0,
                                   sample_weight=lv ** 2 / np.mean(lv ** 2))
        self.highway.weight.copy_(torch.from_numpy(r.coef_.astype(np.float32)))
        self.highway.bias.copy_(torch.from_numpy(np.asarray(r.intercept_, np.float32)))
        self.highway.requires_grad_(False)

    @torch.no_grad()
    def highway_only(self, x: np.ndarray, level: np.ndarray, batch: int = 4096) -> np.ndarray:
        """The frozen linear part alone (= the model before LSTM training): what the
        recurrent part adds is measured against this."""
        out = [(torch.relu(1.0 + self.highway(self.highway_inputs(torch.from_numpy(x[i:i + batch]))))
                * torch.from_numpy(level[i:i + batch])).numpy() for i in range(0, len(x), batch)]
        return np.concatenate(out)

    def lstm_inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.lstm_input == "weekly":      # one step per week over the whole window
            w = x[:, self.window - 7 * self.weeks:, :]
            return w.reshape(-1, self.weeks, 7, w.shape[2]).mean(dim=2)
        return x[:, -self.lstm_steps:, :]

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.lstm_inputs(x))
        z = torch.cat([out[:, -1, :], x[:, -1, :]], dim=1)
        return torch.relu(1.0 + self.head(z) + self.highway(self.highway_inputs(x))) * level


class LinearForecaster(nn.Module):
    """Ridge regression on the last `n_lags` days of features, as a torch graph so that a
    winning linear model exports through the same ONNX path as the LSTM."""

    def __init__(self, n_features: int, n_lags: int, horizon: int = 30):
        super().__init__()
        self.config = {"kind": "ridge", "n_features": n_features, "n_lags": n_lags, "horizon": horizon}
        self.n_lags = n_lags
        self.linear = nn.Linear(n_lags * n_features, horizon)

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        z = x[:, -self.n_lags:, :].reshape(x.shape[0], -1)
        return torch.relu(1.0 + self.linear(z)) * level


def fit_ridge(x: np.ndarray, level: np.ndarray, y: np.ndarray, n_lags: int, alpha: float) -> LinearForecaster:
    """Weighted ridge on (y/level - 1) with weights level^2 = least squares in cycles."""
    from sklearn.linear_model import Ridge
    z = x[:, -n_lags:, :].reshape(len(x), -1)
    lv = level[:, 0].astype(np.float64)
    r = Ridge(alpha=alpha).fit(z, y / lv[:, None] - 1.0, sample_weight=lv ** 2 / np.mean(lv ** 2))
    m = LinearForecaster(x.shape[2], n_lags, y.shape[1])
    with torch.no_grad():
        m.linear.weight.copy_(torch.from_numpy(r.coef_.astype(np.float32)))
        m.linear.bias.copy_(torch.from_numpy(np.asarray(r.intercept_, np.float32)))
    return m


def build(config: dict) -> nn.Module:
    if config["kind"] == "lstm":
        return LSTMForecaster(config["n_features"], config["hidden"], config["layers"], config["horizon"],
                              config.get("dropout", 0.0), config.get("window", 56), config.get("lstm_steps", 56),
                              config.get("highway_lags", 28), config.get("lstm_input", "daily"))
    if config["kind"] == "ridge":
        return LinearForecaster(config["n_features"], config["n_lags"], config["horizon"])
    raise ValueError(f"unknown model kind {config['kind']!r}")


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, level: np.ndarray, batch: int = 4096) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(x[i:i + batch]), torch.from_numpy(level[i:i + batch])).numpy()
           for i in range(0, len(x), batch)]
    return np.concatenate(out) if out else np.zeros((0, 30), np.float32)
