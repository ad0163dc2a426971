"""Cloud side of the bundle contract: build, sign and tar bundles (format: agent.bundle)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import tarfile
from importlib import resources
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle import FORMAT, MANIFEST, MODEL, SIGNATURE, manifest_bytes, sha256_bytes, verify_bundle

# DEVELOPMENT ONLY. This private key is public (it is in the repository); it signs the
# bundles shipped with the agent so a fresh install works. Production signing keys come
# from a path given on the command line / CI secret, never from this file.
DEV_SIGNING_KEY = Path(str(resources.files("export") / "keys" / "dev_signing_key.pem"))


def load_private_key(path: str | Path | None = None) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path or DEV_SIGNING_KEY).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an ed25519 private key")
    return key


def generate_keypair(private_out: str | Path, public_out: str | Path) -> None:
    key = Ed25519PrivateKey.generate()
    Path(private_out).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    Path(public_out).write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def sign_dir(bundle_dir: str | Path, key_path: str | Path | None = None) -> Path:
    """(Re)compute file hashes into manifest.json and write manifest.sig."""
    bundle_dir = Path(bundle_dir)
    import json
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    manifest["format"] = FORMAT
    files = {}
    for f in sorted(bundle_dir.iterdir()):
        if f.name in (MANIFEST, SIGNATURE):
            continue
        data = f.read_bytes()
        files[f.name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    manifest["files"] = files
    mbytes = manifest_bytes(manifest)
    (bundle_dir / MANIFEST).write_bytes(mbytes)
    sig = load_private_key(key_path).sign(mbytes)
    (bundle_dir / SIGNATURE).write_text(base64.b64encode(sig).decode() + "\n")
    return bundle_dir


def build_bundle(out_dir: str | Path, model_onnx: bytes, manifest: dict,
                 extra_files: dict[str, bytes] | None = None,
                 key_path: str | Path | None = None) -> Path:
    """Write model.onnx (+ extra files) and a signed manifest into out_dir.

    `manifest` carries name, version, inputs/outputs, preprocessing, metrics, parity;
    format, created (if absent) and files are filled in here.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        if stale.is_file():
            stale.unlink()
    (out / MODEL).write_bytes(model_onnx)
    for name, data in (extra_files or {}).items():
        (out / name).write_bytes(data)
    manifest = dict(manifest)
    manifest.setdefault("created", dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat())
    (out / MANIFEST).write_bytes(manifest_bytes(manifest))
    return sign_dir(out, key_path)


def tar_bundle(bundle_dir: str | Path) -> bytes:
    """The bundle as an uncompressed tar (flat), e.g. for an MQTT model announcement."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in sorted(Path(bundle_dir).iterdir()):
            info = tarfile.TarInfo(f.name)
            data = f.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


__all__ = ["build_bundle", "sign_dir", "tar_bundle", "generate_keypair", "load_private_key",
           "verify_bundle", "DEV_SIGNING_KEY"]
