"""Release metadata rules (agent.release_metadata) through the key-management commands
(`trey-export keys ...`) and the car's persisted TrustStore: root threshold and rotation,
release keys separate and revocable, per-slot versions that survive a restart, expiry,
cohorts, and the bounded tar reader."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from agent import bundle as B
from agent import release_metadata as R
from export.cli import main as export_main


def keys(tmp, *names):
    from export.bundle import generate_keypair
    out = []
    for n in names:
        generate_keypair(tmp / f"{n}.pem", tmp / f"{n}.pub")
        out.append(tmp / f"{n}.pem")
    return out


def release(slot, version, keys_, tar=b"x" * 100, **kw):
    from export.release import release_doc
    return release_doc(slot, version, tar, {"name": "m", "version": f"{version}"}, keys_, **kw)


def test_root_threshold_rotation_and_revocation_via_commands(tmp_path, capsys):
    r1, r2, r3, n1, t1, t2 = keys(tmp_path, "r1", "r2", "r3", "n1", "t1", "t2")
    trust = tmp_path / "trust"
    assert export_main(["keys", "init", "--dir", str(trust), "--root-key", str(r1), "--root-key", str(r2),
                        "--root-key", str(r3), "--threshold", "2", "--release-key", str(t1)]) == 0
    car = R.TrustStore(tmp_path / "car", initial_root=trust / "root.1.json")
    assert car.root_version == 1
    rel = car.check_release(release("battery", 1, [t1]), "battery")
    assert (rel.version, rel.slot) == (1, "battery")
    with pytest.raises(R.ReleaseError, match="bad_signature"):
        car.check_release(release("battery", 1, [t2]), "battery")       # t2 is not a release key yet

    # add t2: signed by ONE root key -> below the old threshold of 2 -> refused by the car
    assert export_main(["keys", "add", "--dir", str(trust), "--release-key", str(t2), "--sign", str(r1)]) == 0
    from export.release import chain
    with pytest.raises(R.ReleaseError, match="root_threshold"):
        car.update_root(chain(trust))
    (trust / "root.2.json").unlink()
    assert export_main(["keys", "add", "--dir", str(trust), "--release-key", str(t2),
                        "--sign", str(r1), "--sign", str(r3)]) == 0
    assert car.update_root(chain(trust)) == 2
    car.check_release(release("battery", 1, [t2]), "battery")

    # revoke t1: its releases are refused and the reason says so
    assert export_main(["keys", "revoke", "--dir", str(trust), "--key", str(t1), "--sign", str(r1),
                        "--sign", str(r2)]) == 0
    assert car.update_root(chain(trust)) == 3
    with pytest.raises(R.ReleaseError, match="revoked_key"):
        car.check_release(release("battery", 1, [t1]), "battery")

    # rotate the root keys to n1 alone: needs 2 of the old AND the new one's signature
    assert export_main(["keys", "rotate", "--dir", str(trust), "--new-root-key", str(n1), "--threshold", "1",
                        "--sign", str(r2), "--sign", str(r3)]) == 0
    with pytest.raises(R.ReleaseError, match="its own root keys"):
        car.update_root(chain(trust))
    (trust / "root.4.json").unlink()
    assert export_main(["keys", "rotate", "--dir", str(trust), "--new-root-key", str(n1), "--threshold", "1",
                        "--sign", str(r2), "--sign", str(r3), "--sign", str(n1)]) == 0
    assert car.update_root(chain(trust)) == 4
    # a root 5 signed by the old root keys only is now refused: the rotation took effect
    from export.release import update_root
    update_root(trust, [r1, r2], add_targets=[t1])
    with pytest.raises(R.ReleaseError, match="root_threshold"):
        car.update_root(chain(trust))
    # the car persisted root 4: a restart keeps it (not the initial root 1)
    assert R.TrustStore(tmp_path / "car", initial_root=trust / "root.1.json").root_version == 4
    assert "wrote" in capsys.readouterr().out


def test_versions_persist_and_expiry_and_slot(tmp_path):
    from export.bundle import DEV_SIGNING_KEY
    car = R.TrustStore(tmp_path / "car")                        # the shipped DEVELOPMENT root
    car.accept(car.check_release(release("battery", 4, [DEV_SIGNING_KEY]), "battery"))
    car = R.TrustStore(tmp_path / "car")                        # after a restart
    for v, reason in ((3, "rollback"), (4, "replay")):
        with pytest.raises(R.ReleaseError, match=reason):
            car.check_release(release("battery", v, [DEV_SIGNING_KEY]), "battery")
    car.check_release(release("compliance", 1, [DEV_SIGNING_KEY]), "compliance")   # versions are per slot
    with pytest.raises(R.ReleaseError, match="wrong_slot"):
        car.check_release(release("compliance", 9, [DEV_SIGNING_KEY]), "battery")
    with pytest.raises(R.ReleaseError, match="expired"):
        car.check_release(release("battery", 9, [DEV_SIGNING_KEY], expires_days=-0.01), "battery")
    # freeze: the accepted release of a slot expiring is visible (health shows "expired")
    short = car.check_release(release("compliance", 2, [DEV_SIGNING_KEY], expires_days=1), "compliance")
    car.accept(short)
    assert not car.expired("compliance")
    car.clock = lambda: R.parse_time(short.expires) + 1
    assert car.expired("compliance") and not car.expired("battery")
    car.clock = __import__("time").time
    rel = car.check_release(release("battery", 9, [DEV_SIGNING_KEY], tar=b"abc"), "battery")
    with pytest.raises(R.ReleaseError, match="length_mismatch"):
        R.check_target(rel, b"abcd")
    with pytest.raises(R.ReleaseError, match="sha256_mismatch"):
        R.check_target(rel, b"abd")
    R.check_target(rel, b"abc")
    # a tampered signed field breaks the signature
    doc = release("battery", 10, [DEV_SIGNING_KEY])
    doc["signed"]["cohort"] = None
    doc["signed"]["shadow"] = True
    with pytest.raises(R.ReleaseError, match="bad_signature"):
        car.check_release(doc, "battery")


def test_cohort_is_stable_and_widening_is_a_superset():
    from export.release import cohort_percent
    cars = [f"CAR-{i:04d}" for i in range(2000)]
    quarter = {c for c in cars if R.in_cohort(cohort_percent(25, "battery"), c)}
    half = {c for c in cars if R.in_cohort(cohort_percent(50, "battery"), c)}
    assert 400 < len(quarter) < 600 and quarter <= half
    assert R.in_cohort({"vehicles": ["CAR-0001"]}, "CAR-0001") and not R.in_cohort({"vehicles": []}, "CAR-0001")
    assert R.in_cohort(None, "anyone")


def _tar(n: int, mode="w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for i in range(n):
            tar.addfile(tarfile.TarInfo(f"f{i}"), io.BytesIO(b""))
    return buf.getvalue()


def test_tar_reader_refuses_compressed_and_many_members_cheaply():
    with pytest.raises(B.BundleError, match="more than 16 tar members"):
        B.read_tar_bytes(_tar(2000))
    with pytest.raises(B.BundleError, match="uncompressed"):
        B.read_tar_bytes(_tar(3, "w:gz"))
    with pytest.raises(B.BundleError, match="uncompressed"):
        B.read_tar_bytes(gzip.compress(b"\0" * (1 << 20)))
    assert set(B.read_tar_bytes(_tar(3))) == {"f0", "f1", "f2"}
    # the shipped bundles (dev key) still verify
    assert B.verify_bundle(B.DEFAULT_BATTERY_BUNDLE).name
    assert json.loads((R.DEV_ROOT).read_text())["signed"]["version"] == 1


def test_config_models_root_is_validated(tmp_path):
    from agent.config import ConfigError, load_config
    cfg = tmp_path / "agent.toml"
    base = '[vehicle]\nid = "C"\n[state]\ndir = "%s"\n[models]\nroot = "%s"\n'
    cfg.write_text(base % (tmp_path / "s", R.DEV_ROOT))
    assert load_config(cfg).models.root == str(R.DEV_ROOT)
    bad = tmp_path / "root.json"
    doc = json.loads(R.DEV_ROOT.read_text())
    doc["signed"]["roles"]["root"]["threshold"] = 1
    doc["signed"]["version"] = 2                      # signature no longer matches
    bad.write_text(json.dumps(doc))
    for path, msg in ((bad, "root_threshold"), (tmp_path / "missing.json", "No such file")):
        cfg.write_text(base % (tmp_path / "s", path))
        with pytest.raises(ConfigError, match=f"models.root: .*{msg}"):
            load_config(cfg)
