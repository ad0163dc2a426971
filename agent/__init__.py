"""trey-edge agent: the part that ships to the car's head unit.

Imports only its runtime dependencies (numpy, onnxruntime, python-can, cantools,
paho-mqtt, pyserial, cryptography) and the stdlib. It owns the contracts that
`export/` and `can_sim/` import: signals, DBC + signal map, daily-row schema,
cleaning, tokenizer, model-bundle format, MQTT topics.
"""

__version__ = "0.1.0"
