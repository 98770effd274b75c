"""Minting the local issuer's tokens: the claims the fulfillment service reads (`organization`
is the tenant, `preferred_username` the user), signed with the issuer's key.

`cloudkit token` and `cloudkit login --tenant` mint from the key file directly: whoever can
read the state directory is the stack's owner already (it holds the cluster's admin token too).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import jwt

from cloudkit.local.issuer.keys import ALGORITHM, key_id, load_signing_key
from cloudkit.local.private import write_private

DEFAULT_AUDIENCE = "cloudkit-fulfillment"
DEFAULT_TTL_S = 12 * 3600
INFO_FILE = "issuer.json"


@dataclass(frozen=True)
class IssuerInfo:
    """What a running issuer publishes in its directory: where it is and whom it mints for."""

    url: str
    audience: str
    ca_file: str

    def write(self, issuer_dir: Path) -> None:
        tmp = issuer_dir / (INFO_FILE + ".tmp")
        write_private(tmp, json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(issuer_dir / INFO_FILE)

    @classmethod
    def read(cls, issuer_dir: Path) -> IssuerInfo:
        """Raises FileNotFoundError when no issuer has started there."""
        data = json.loads((issuer_dir / INFO_FILE).read_text())
        return cls(url=str(data["url"]), audience=str(data["audience"]), ca_file=data["ca_file"])


def mint(
    issuer_dir: Path, *, tenant: str, user: str | None = None, ttl_s: int = DEFAULT_TTL_S
) -> str:
    """A bearer token of the issuer in `issuer_dir` for `user` (default: `tenant`'s name) of
    `tenant`, valid `ttl_s` seconds from now."""
    if not tenant:
        raise ValueError("tenant: must not be empty")
    if ttl_s <= 0:
        raise ValueError(f"ttl: must be positive, got {ttl_s}")
    info = IssuerInfo.read(issuer_dir)
    key = load_signing_key(issuer_dir)
    now = int(time.time())
    user = user or tenant
    claims = {
        "iss": info.url,
        "aud": info.audience,
        "sub": f"{tenant}:{user}",
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": str(uuid.uuid4()),
        "organization": tenant,
        "preferred_username": user,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})
