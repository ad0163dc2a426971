"""Model-bundle format and its verification (the agent owns this contract).

A bundle is a directory (or a .tar of one) holding:
  model.onnx      the int8 model
  manifest.json   name, version, created, inputs/outputs, preprocessing, metrics, parity,
                  and "files": {name: {"sha256", "bytes"}} for every other file
  manifest.sig    base64 ed25519 signature over the exact bytes of manifest.json

`verify_bundle` reads every file into memory, checks the signature against the trusted
keys and each file's sha256, and returns the verified bytes. Callers build their ONNX
sessions from those bytes, so what runs is exactly what was verified (no re-read race).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "trey-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MODEL = "model.onnx"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024   # a car-side model is small; refuse anything absurd
MAX_MEMBERS = 16                       # a bundle is model.onnx + manifest + signature + a few extras

_PKG = Path(str(resources.files("agent")))
DEFAULT_BATTERY_BUNDLE = _PKG / "models" / "battery"
DEFAULT_COMPLIANCE_BUNDLE = _PKG / "models" / "compliance"
# DEVELOPMENT key: the public half of export/keys/dev_signing_key.pem, which signs the
# bundles shipped in this repository. Production head units configure their own keys.
DEV_TRUSTED_KEYS = _PKG / "keys"


class BundleError(Exception):
    """A bundle that must not be loaded; the message says why."""


@dataclass(frozen=True)
class Bundle:
    source: str
    manifest: dict
    files: dict[str, bytes]          # verified contents, including model.onnx

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def model_bytes(self) -> bytes:
        return self.files[MODEL]

    @property
    def sha256(self) -> str:
        """Identity of the bundle: sha256 of its manifest (which pins every file)."""
        return hashlib.sha256(manifest_bytes(self.manifest)).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_bytes(manifest: dict) -> bytes:
    """Canonical serialisation of a manifest: what gets signed and written."""
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """PEM (SubjectPublicKeyInfo) or base64 of the raw 32 bytes."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(text)
        if not isinstance(key, Ed25519PublicKey):
            raise BundleError("trusted key is not an ed25519 public key")
        return key
    raw = base64.b64decode(text, validate=True)
    return Ed25519PublicKey.from_public_bytes(raw)


def load_trusted_keys(paths) -> list[Ed25519PublicKey]:
    """Keys from files and/or directories (every *.pub / *.pem file in a directory)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    keys: list[Ed25519PublicKey] = []
    for p in map(Path, paths):
        files = sorted(f for f in p.iterdir() if f.suffix in (".pub", ".pem")) if p.is_dir() else [p]
        for f in files:
            try:
                keys.append(load_public_key(f.read_bytes()))
            except (OSError, ValueError, BundleError) as exc:
                raise BundleError(f"cannot load trusted key {f}: {exc}") from None
    if not keys:
        raise BundleError(f"no trusted keys found in {[str(p) for p in paths]}")
    return keys


def _read_dir(path: Path) -> dict[str, bytes]:
    files, total = {}, 0
    for f in sorted(path.iterdir()):
        if not f.is_file():
            raise BundleError(f"{path}: unexpected entry {f.name!r} (bundles are flat)")
        total += f.stat().st_size
        if total > MAX_BUNDLE_BYTES:
            raise BundleError(f"{path}: larger than {MAX_BUNDLE_BYTES} bytes")
        files[f.name] = f.read_bytes()
    return files


def read_tar_bytes(data: bytes, source: str = "<tar>") -> dict[str, bytes]:
    """Flat regular files of an UNCOMPRESSED tar (optionally under one top-level folder).
    Rejects compressed archives (no decompression bomb can start), more than MAX_MEMBERS
    members (headers are read one at a time, not all up front), links, absolute or parent
    paths, and members larger than the archive itself."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"{source}: larger than {MAX_BUNDLE_BYTES} bytes")
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for n, m in enumerate(iter(tar.next, None)):
                if n >= MAX_MEMBERS:
                    raise BundleError(f"{source}: more than {MAX_MEMBERS} tar members")
                if m.isdir():
                    continue
                parts = Path(m.name).parts
                if not m.isreg() or m.name.startswith("/") or ".." in parts or len(parts) > 2 or m.size > len(data):
                    raise BundleError(f"{source}: refusing tar member {m.name!r}")
                fh = tar.extractfile(m)
                files[parts[-1]] = fh.read() if fh else b""
                tar.members = []          # keep no per-member state
    except tarfile.TarError as exc:
        raise BundleError(f"{source}: not a readable uncompressed tar: {exc}") from None
    return files


def verify_files(files: dict[str, bytes], trusted_keys, source: str = "<bundle>") -> Bundle:
    """Verify in-memory bundle files: signature over manifest.json, then every file hash.
    trusted_keys as in verify_bundle (None = the development keys shipped with the agent)."""
    if trusted_keys is None:
        trusted_keys = DEV_TRUSTED_KEYS
    if MANIFEST not in files or SIGNATURE not in files:
        raise BundleError(f"{source}: missing {MANIFEST} or {SIGNATURE}")
    mbytes = files[MANIFEST]
    try:
        sig = base64.b64decode(files[SIGNATURE].strip(), validate=True)
    except ValueError:
        raise BundleError(f"{source}: {SIGNATURE} is not base64") from None
    keys = trusted_keys if isinstance(trusted_keys, list) else load_trusted_keys(trusted_keys)
    for key in keys:
        try:
            key.verify(sig, mbytes)
            break
        except InvalidSignature:
            continue
    else:
        raise BundleError(f"{source}: signature does not verify against any trusted key")
    try:
        manifest = json.loads(mbytes)
    except ValueError as exc:
        raise BundleError(f"{source}: manifest.json is not JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{source}: unsupported bundle format {manifest.get('format')!r}")
    listed = manifest.get("files") or {}
    if MODEL not in listed:
        raise BundleError(f"{source}: manifest does not list {MODEL}")
    extra = set(files) - set(listed) - {MANIFEST, SIGNATURE}
    if extra:
        raise BundleError(f"{source}: files not covered by the manifest: {sorted(extra)}")
    for name, meta in listed.items():
        if name not in files:
            raise BundleError(f"{source}: {name} listed in manifest but missing")
        if sha256_bytes(files[name]) != meta.get("sha256"):
            raise BundleError(f"{source}: sha256 mismatch for {name}")
    for key in ("name", "version", "created"):
        if not isinstance(manifest.get(key), str):
            raise BundleError(f"{source}: manifest field {key!r} missing or not a string")
    return Bundle(source, manifest, files)


def verify_bundle(path: str | Path, trusted_keys=None) -> Bundle:
    """Verify a bundle directory or .tar; trusted_keys = key objects, file(s) or dir(s)
    (default: the development keys shipped with the agent). Raises BundleError."""
    path = Path(path)
    if trusted_keys is None:
        trusted_keys = DEV_TRUSTED_KEYS
    if path.is_dir():
        files = _read_dir(path)
    elif path.is_file():
        files = read_tar_bytes(path.read_bytes(), str(path))
    else:
        raise BundleError(f"bundle not found: {path}")
    return verify_files(files, trusted_keys, str(path))
