"""Battery forecasting pipeline: fleet data, baselines, LSTM, search, ONNX export, evaluation."""
