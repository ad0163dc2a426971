"""Hypothesis on every parser at a boundary of the agent (issue #10 "Fuzzing in the suite").

Through the public entry points only: frame decode (agent.decode.Decoder), signal map and
config loading, downlink validation (agent.topics), bundle/tar reading
(agent.bundle.verify_bundle / verify_files), HMI request parsing and handling (a real
agent's HMI over sockets), the history CSV reader (agent.cleaning), the tokenizer, the
classify CLI's line parser, strict JSON and line splitting. Each must either succeed or
raise its documented error — never anything else, never a traceback to the client, never
more memory than its bound. Examples per target: tests/fuzz_support.py (`make fuzz` = more).
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.fuzz_support import fuzz, mutate

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024

json_scalars = st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=True) | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=5) |
                           st.dictionaries(st.text(max_size=12), kids, max_size=5), max_leaves=25)
flips = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8)
cuts = st.none() | st.integers(0, 1 << 20)


# ----------------------------------------------------------------------------- CAN frame decode
@pytest.fixture(scope="module")
def decoder():
    from agent.decode import Decoder
    from agent.signal_map import load_signal_map
    return Decoder(load_signal_map())


@fuzz
@given(data=st.data())
def test_frame_decode_never_raises(decoder, data):
    import can
    ids = decoder.frame_ids
    arb = data.draw(st.sampled_from(ids) | st.integers(0, 0x1FFFFFFF))
    ext = data.draw(st.booleans()) if arb <= 0x7FF else True
    payload = data.draw(st.binary(max_size=64))
    msg = can.Message(arbitration_id=arb, is_extended_id=ext, data=payload, is_fd=len(payload) > 8,
                      is_remote_frame=data.draw(st.booleans()) and len(payload) <= 8,
                      check=False)
    out = decoder.decode(msg)
    assert out is None or isinstance(out, dict)


# ----------------------------------------------------------------------------- signal map + config
@fuzz
@given(flip=flips, cut=cuts, extra=st.text(max_size=200))
def test_signal_map_loader_only_raises_signal_map_error(tmp_path_factory, flip, cut, extra):
    from agent.signal_map import SignalMapError, load_signal_map
    src = (ROOT / "agent" / "data" / "signal_map.toml").read_bytes()
    p = tmp_path_factory.mktemp("smap") / "map.toml"
    p.write_bytes(mutate(src, flip, cut) + extra.encode("utf-8", "surrogatepass"))
    try:
        load_signal_map(None, p)
    except SignalMapError:
        pass


@fuzz
@given(raw=st.binary(max_size=2000) | st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_config_file_only_raises_config_error(tmp_path_factory, raw):
    from agent.config import ConfigError, load_config
    p = tmp_path_factory.mktemp("cfg") / "agent.toml"
    p.write_bytes(raw)
    with pytest.raises(ConfigError):
        load_config(p)          # never a valid config: [vehicle] and [state] are required


_SECTIONS = ["vehicle", "can", "state", "models", "hmi", "mqtt", "components", "log", "x"]


@fuzz
@given(doc=st.dictionaries(st.sampled_from(_SECTIONS), st.dictionaries(
    st.sampled_from(["id", "dir", "interface", "channel", "bitrate", "port", "listen", "host", "max_connections",
                     "level", "spec", "vins", "max_vins", "trusted_keys", "enabled", "zz"]), json_values, max_size=6),
    max_size=6))
def test_config_dict_only_raises_config_error(doc):
    from agent.config import Config, ConfigError, config_from_dict
    try:
        cfg = config_from_dict(doc)
    except ConfigError:
        return
    assert isinstance(cfg, Config)


# ----------------------------------------------------------------------------- downlink validation
VID = "CAR-1"
_TOPICS = ["trey/v1/CAR-1/components", "trey/v1/CAR-1/ack", "trey/v1/fleet/models/battery",
           "trey/v1/fleet/models/compliance/chunks/0", "trey/v1/CAR-2/ack", "trey/v1/CAR-1/nope"]


def _valid_payloads():
    from agent import topics as T
    return [T.encode(T.components_message(VID, {"vin": "V1", "components": [{"component": "alternator",
                                                                              "note": "steel 1985 fair"}]})),
            T.encode(T.ack_message(VID, 3))]


@fuzz
@given(topic=st.sampled_from(_TOPICS) | st.text(max_size=60), which=st.integers(0, 1), flip=flips, cut=cuts,
       obj=json_values, mode=st.integers(0, 2))
def test_downlink_validation_only_raises_payload_error(topic, which, flip, cut, obj, mode):
    from agent import topics as T
    if mode == 0:
        payload = mutate(_valid_payloads()[which], flip, cut)
    elif mode == 1:
        base = json.loads(_valid_payloads()[which])
        base.update(obj if isinstance(obj, dict) else {"x": obj})
        payload = json.dumps(base, allow_nan=True).encode("utf-8", "surrogatepass")
    else:
        payload = json.dumps(obj, allow_nan=True).encode("utf-8", "surrogatepass")
    try:
        kind, body = T.decode_downlink(topic, payload, VID, 64 * 1024)
    except T.PayloadError as exc:
        assert ":" in exc.reason or exc.reason == "unexpected_topic"
        return
    # Accepted: everything in it is safe to store, show and send on.
    json.dumps(body, default=repr, allow_nan=False).encode("utf-8")
    if kind == "components":
        from agent.components import parse_document
        parse_document(body)


@fuzz
@given(doc=json_values)
def test_component_documents_only_raise_spec_error(doc):
    from agent.components import SpecError, parse_document
    try:
        vin, notes = parse_document(doc)
    except SpecError:
        return
    for name, note in notes:
        assert "/" not in name and ".." not in name
        (vin + name + note).encode("utf-8")


# ----------------------------------------------------------------------------- bundles / tar
def _valid_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in sorted((ROOT / "agent" / "models" / "compliance").iterdir()):
            tar.add(f, arcname=f"compliance/{f.name}")
    return buf.getvalue()


@pytest.fixture(scope="module")
def valid_tar():
    if not (ROOT / "agent" / "models" / "compliance" / "manifest.json").exists():
        pytest.skip("shipped compliance bundle not built")
    return _valid_tar()


@fuzz
@given(flip=flips, cut=cuts, gz=st.booleans())
def test_bundle_tar_reading_only_raises_bundle_error(tmp_path_factory, valid_tar, flip, cut, gz):
    import gzip

    from agent.bundle import BundleError, verify_bundle
    data = mutate(valid_tar, flip, cut)
    if gz:
        data = gzip.compress(data, compresslevel=1)
    p = tmp_path_factory.mktemp("tar") / "bundle.tar"
    p.write_bytes(data)
    tracemalloc.start()
    try:
        verify_bundle(p, None)
    except BundleError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 64 * MB, f"{peak / MB:.0f} MB for a {len(data)} byte bundle"


@fuzz
@given(files=st.dictionaries(st.sampled_from(["manifest.json", "manifest.sig", "model.onnx", "x", "../x"]),
                             st.binary(max_size=300), max_size=4), use_real=st.booleans(), flip=flips)
def test_verify_files_only_raises_bundle_error(files, use_real, flip):
    from agent.bundle import BundleError, verify_files
    if use_real:
        real = {f.name: f.read_bytes() for f in (ROOT / "agent" / "models" / "compliance").iterdir()}
        key = sorted(real)[len(flip) % len(real)]
        real[key] = mutate(real[key], flip, None)
        files = {**real, **{k: v for k, v in files.items() if k == "x"}}
    try:
        verify_files(files, None, "fuzz")
    except BundleError:
        pass


# ----------------------------------------------------------------------------- HMI requests
@fuzz
@given(raw=st.binary(max_size=600))
def test_http_head_parser_only_raises_http_error(raw):
    from agent.hmi.http import HttpError, Request, content_length, parse_head
    try:
        req = parse_head(raw)
        content_length(req, 4096)
    except HttpError as exc:
        assert 400 <= exc.status < 600 and exc.close
        return
    assert isinstance(req, Request)


@pytest.fixture(scope="module")
def hmi_agent(tmp_path_factory):
    from tests.daemon_support import InProcessAgent, agent_config
    tmp = tmp_path_factory.mktemp("fuzz-hmi")
    cfg = agent_config(tmp)
    cfg.write_text(cfg.read_text().replace("[hmi]\n", "[hmi]\nheader_timeout_s = 1\nidle_timeout_s = 1\n"))
    with InProcessAgent(cfg) as a:
        a.agent.alerts.raise_or_update("battery:B-F", "battery", "warning", "t", "m", {})
        yield a


_LINES = [b"GET / HTTP/1.1", b"POST /api/alerts/1/ack HTTP/1.1", b"HEAD /api/events HTTP/1.1",
          b"GET /api/alerts?active=1 HTTP/1.0", b"Host: 127.0.0.1:{port}", b"Content-Length: 5",
          b"Content-Length: \xc2\xb2", b"Content-Type: application/json", b"Origin: http://evil",
          b"Connection: close", b"Transfer-Encoding: chunked", b"X-Trey-Token: x", b"", b'{"by": "\\ud800"}',
          b"[" * 50, b"GET /api/alerts/\xc2\xb2 HTTP/1.1", b"Sec-Fetch-Site: cross-site"]


@fuzz
@given(parts=st.lists(st.sampled_from(_LINES) | st.binary(max_size=40), min_size=1, max_size=10),
       sep=st.sampled_from([b"\r\n", b"\n"]))
def test_hmi_answers_any_request_without_500(hmi_agent, parts, sep):
    port = hmi_agent.agent.hmi.port
    raw = sep.join(parts).replace(b"{port}", str(port).encode()) + sep + sep
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw + b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (socket.timeout, ConnectionResetError):
            pass
    got = b"".join(chunks)
    assert b"Traceback" not in got
    import re
    statuses = [int(x) for x in re.findall(rb"HTTP/1\.1 ([0-9]{3}) ", got)]
    assert all(s < 500 or s in (501, 503, 505) for s in statuses), got[:500]
    assert hmi_agent.agent.alerts.get_by_key("battery:B-F")["state"] == "raised"


# ----------------------------------------------------------------------------- history CSV
_CSV_COLS = ["Date", "Battery_ID", "Battery_Age_Days", "Number_Of_Trips", "Daily_Trip_Duration",
             "Daily_Cycles_Used", "Lifetime_Cycles_Used", "Battery_Rated_Cycles"]
cell = (st.sampled_from(["", "1", "-1", "0.5", "nan", "inf", "1e308", "2024-01-01", "2024-01-01 12:00:00",
                         "2024-13-40", "B1"]) | st.text(max_size=12))


@fuzz
@given(rows=st.lists(st.dictionaries(st.sampled_from(_CSV_COLS), cell, min_size=6), max_size=20),
       days=st.lists(st.integers(0, 60), max_size=20))
def test_history_cleaning_only_raises_cleaning_error(rows, days):
    from datetime import date, timedelta

    from agent.cleaning import CleaningError, clean_history
    # Dates near each other (a year 1..9999 range is materialised day by day: noted for the
    # CSV reader's owner, see the report) and the rest of each row free-form.
    for r, d in zip(rows, days):
        if "Date" in r and r["Date"] not in ("", "2024-13-40"):
            r["Date"] = (date(2024, 1, 1) + timedelta(days=d)).isoformat()
    try:
        clean_history(rows)
    except CleaningError:
        pass


# ----------------------------------------------------------------------------- tokenizer
@pytest.fixture(scope="module")
def tokenizer():
    from agent.tokenizer import Tokenizer
    m = json.loads((ROOT / "agent" / "models" / "compliance" / "manifest.json").read_text())
    return Tokenizer.from_manifest(m["preprocessing"]["tokenizer"])


@fuzz
@given(text=st.text(max_size=2000))
def test_tokenizer_encodes_any_text(tokenizer, text):
    ids = tokenizer.encode(text)
    assert all(isinstance(i, int) and i >= 0 for i in ids)


# ----------------------------------------------------------------------------- classify CLI input, JSON, lines
@fuzz
@given(raw=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(
    {"id": v, "text": "steel 2012 good"}, allow_nan=True).encode("utf-8", "surrogatepass")))
def test_classify_line_parser_gives_printable_records(raw):
    from agent.commands.classify import parse_line
    rec = parse_line(raw, 7)
    assert rec["line"] == 7 and (("text" in rec) != ("error" in rec))
    out = json.dumps(rec, ensure_ascii=False, allow_nan=False).encode("utf-8")   # valid JSON, valid UTF-8
    assert json.loads(out) == rec


@fuzz
@given(raw=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v, allow_nan=True).encode(
    "utf-8", "surrogatepass")))
def test_strict_json_only_raises_invalid_input(raw):
    from agent import validate
    try:
        v = validate.loads_json(raw)
    except validate.InvalidInput:
        return
    json.dumps(v, allow_nan=False).encode("utf-8")


@fuzz
@given(data=st.binary(max_size=200), chunk=st.integers(1, 70), maxb=st.integers(1, 50))
def test_line_splitting_matches_the_rule(data, chunk, maxb):
    import re

    from agent.lines import iter_lines
    ref = re.split(rb"\r\n|\r|\n", data)
    if re.search(rb"(\r\n|\r|\n)$", data) or not data:
        ref = ref[:-1]
    got = list(iter_lines(io.BytesIO(data), max_bytes=maxb, chunk=chunk))
    assert got == [line[:maxb + 1] for line in ref]
    assume(True)
