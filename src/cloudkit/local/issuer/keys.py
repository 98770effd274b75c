"""The issuer's signing key (EC P-256, ES256): made on first start, kept 0600 in the state
directory so tokens minted before a restart stay valid, and published as a JWK."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from cloudkit.local.private import write_private

ALGORITHM = "ES256"
KEY_FILE = "signing.key"


def ensure_signing_key(issuer_dir: Path) -> ec.EllipticCurvePrivateKey:
    """DIR/signing.key, created (0600) if missing."""
    path = issuer_dir / KEY_FILE
    if path.exists():
        return load_signing_key(issuer_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(path, pem)
    return key


def load_signing_key(issuer_dir: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key((issuer_dir / KEY_FILE).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{issuer_dir / KEY_FILE}: not an EC private key")
    return key


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """The public half as a JWK with its RFC 7638 thumbprint as `kid`."""
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=key_id(key), use="sig", alg=ALGORITHM)
    return jwk


def key_id(key: ec.EllipticCurvePrivateKey) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, without whitespace."""
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    required = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(required, separators=(",", ":"), sort_keys=True).encode())
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
