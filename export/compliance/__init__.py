"""Component compliance, cloud side: note corpus, Keras LSTM training, ONNX export, batch scoring."""
