"""Mutual TLS against a real mosquitto with a test CA generated here: the agent's client
certificate is accepted; a client without one is refused."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent import topics as T
from agent.sync import Sync
from tests.conftest import Broker, free_port, wait_until
from tests.sync_support import agent_cfg, make_row, open_store, store_daily_row


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject: str, key, issuer_name, issuer_key, *, ca=False, server=False) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_pki(d):
    """Test CA + server cert (127.0.0.1) + a client cert for the car; PEM files in d."""
    d.mkdir(parents=True, exist_ok=True)
    files = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("trey test CA", ca_key, _name("trey test CA"), ca_key, ca=True)
    for role, cn, server in (("server", "127.0.0.1", True), ("client", "CAR-TLS", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(cn, key, ca.subject, ca_key, server=server)
        (d / f"{role}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{role}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                                          serialization.NoEncryption()))
        files[role] = (str(d / f"{role}.crt"), str(d / f"{role}.key"))
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["ca"] = str(d / "ca.crt")
    return files


@pytest.fixture
def tls_broker(tmp_path):
    pki = make_pki(tmp_path / "pki")
    port = free_port()
    conf = "\n".join([f"listener {port} 127.0.0.1", "allow_anonymous true", f"cafile {pki['ca']}",
                      f"certfile {pki['server'][0]}", f"keyfile {pki['server'][1]}",
                      "require_certificate true", "user root"])
    b = Broker(tmp_path / "broker", port=port, extra_conf=conf, listener=False).start()
    yield b, pki
    b.stop()


def test_mutual_tls_accepts_client_cert_refuses_without(tls_broker, tmp_path):
    b, pki = tls_broker
    # the cloud side listens over mutual TLS too
    got = []
    cloud = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cloud", protocol=mqtt.MQTTv5)
    cloud.tls_set(ca_certs=pki["ca"], certfile=pki["client"][0], keyfile=pki["client"][1])
    cloud.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    cloud.connect(b.host, b.port)
    cloud.subscribe(T.daily_topic("CAR-TLS"), 1)
    cloud.loop_start()

    store = open_store(tmp_path / "state")
    sync = Sync(agent_cfg(tmp_path / "state", b.host, b.port, "CAR-TLS", tls=True, ca_file=pki["ca"],
                          cert_file=pki["client"][0], key_file=pki["client"][1]),
                store, backoff_min=0.05, backoff_max=0.2).start()
    wait_until(lambda: sync.status()["connected"], 10, what="TLS connect with client cert")
    store_daily_row(store, make_row("BAT-T", 0))
    wait_until(lambda: got, 10, what="row over mutual TLS")
    assert got[0]["row"]["Battery_ID"] == "BAT-T" and got[0]["vehicle_id"] == "CAR-TLS"
    assert sync.wait_drained(5)
    sync.stop()
    cloud.loop_stop()
    cloud.disconnect()

    # same CA, no client certificate: the handshake is refused, the agent keeps retrying
    store2 = open_store(tmp_path / "state2")
    nocert = Sync(agent_cfg(tmp_path / "state2", b.host, b.port, "CAR-TLS-2", tls=True, ca_file=pki["ca"]),
                  store2, backoff_min=0.05, backoff_max=0.2).start()
    time.sleep(1.5)
    st = nocert.status()
    nocert.stop()
    assert st["connected"] is False and st["connects"] == 0
    assert st["last_error"], st
    # and a plain-TCP client gets nowhere either
    plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plain", protocol=mqtt.MQTTv5)
    connected = []
    plain.on_connect = lambda *a: connected.append(a[3])
    try:
        plain.connect(b.host, b.port)
        for _ in range(20):
            if plain.loop(0.05) != 0:
                break
    except OSError:
        pass
    assert not connected


def test_username_password_from_file(tmp_path):
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "car-7", "s3cret"], check=True,
                   capture_output=True)
    port = free_port()
    b = Broker(tmp_path / "broker", port=port, listener=False, extra_conf="\n".join(
        [f"listener {port} 127.0.0.1", "allow_anonymous false", f"password_file {pw}", "user root"])).start()
    try:
        good, bad = tmp_path / "good.pw", tmp_path / "bad.pw"
        good.write_text("s3cret\n")                  # trailing newline of an editor is not part of it
        bad.write_text("guess\n")
        st_good = open_store(tmp_path / "s1")
        ok = Sync(agent_cfg(tmp_path / "s1", b.host, b.port, "CAR-7", username="car-7", password_file=str(good)),
                  st_good, backoff_min=0.05, backoff_max=0.2).start()
        nok = Sync(agent_cfg(tmp_path / "s2", b.host, b.port, "CAR-8", username="car-7", password_file=str(bad)),
                   open_store(tmp_path / "s2"), backoff_min=0.05, backoff_max=0.2).start()
        wait_until(lambda: ok.status()["connected"], 10, what="connect with the password from the file")
        wait_until(lambda: "refused" in nok.status()["last_error"], 10, what="wrong password refused")
        assert nok.status()["connects"] == 0
        ok.stop()
        nok.stop()
    finally:
        b.stop()
