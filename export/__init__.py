"""trey-edge cloud side: data generators, training, ONNX export, signing, ingest.

Imports contracts from `agent` (never re-implements them); installed with the `train` extra.
"""
