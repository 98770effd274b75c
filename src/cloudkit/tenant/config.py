"""Login state: where the API is and how to get a token, in the file named by CLOUDKIT_CONFIG
(default ~/.config/cloudkit/config.json, 0600), so two shells with two files are two tenants.

Three ways to a token: one given at login (`--token`), a command run before every call
(`--token-script`, the person's own command line, as upstream's CLI runs it), or the local
stack's issuer (`--tenant`), which mints a fresh token for every call from the stack's state
directory and re-reads where the service is, so a restarted stack needs no new login.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from cloudkit.fulfillment.client import TokenSource

CONFIG_ENV = "CLOUDKIT_CONFIG"
TOKEN_SCRIPT_TIMEOUT_S = 60


class LoginError(Exception):
    """Not logged in, or the login state cannot give a token; the message says what to do."""


def config_path() -> Path:
    configured = os.environ.get(CONFIG_ENV)
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "cloudkit" / "config.json"


@dataclass(frozen=True)
class LoginState:
    address: str
    ca_file: str | None = None
    token: str | None = None
    token_script: str | None = None
    tenant: str | None = None
    """With `state_dir`: the local stack's issuer mints for this tenant."""
    user: str | None = None
    state_dir: str | None = None

    def save(self, path: Path | None = None) -> Path:
        path = path or config_path()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an older, wider file is narrowed (it holds a token)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({k: v for k, v in asdict(self).items() if v is not None}, handle, indent=2)
            handle.write("\n")
        return path

    @classmethod
    def load(cls, path: Path | None = None) -> LoginState:
        path = path or config_path()
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise LoginError(
                f"not logged in ({path} does not exist); run `cloudkit login`"
            ) from None
        except json.JSONDecodeError as error:
            raise LoginError(
                f"{path}: not JSON ({error.msg}); run `cloudkit login` again"
            ) from None
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})

    def where(self) -> tuple[str, str | None]:
        """(address, CA file): for the local stack as it runs now, else as logged in."""
        if self.tenant is not None and self.state_dir is not None:
            from cloudkit.local.stack.fulfillment import FulfillmentEndpoint

            try:
                endpoint = FulfillmentEndpoint.read(Path(self.state_dir))
            except FileNotFoundError:
                raise LoginError(
                    f"no local stack in {self.state_dir} (is `cloudkit up` running?)"
                ) from None
            return endpoint.address, endpoint.ca_file
        return self.address, self.ca_file

    def token_source(self) -> TokenSource:
        if self.tenant is not None and self.state_dir is not None:
            return _local_issuer(Path(self.state_dir), self.tenant, self.user)
        if self.token_script is not None:
            return _script(self.token_script)
        if self.token is not None:
            token = self.token
            return lambda: token
        raise LoginError("the login state has no token; run `cloudkit login` again")


def _local_issuer(state_dir: Path, tenant: str, user: str | None) -> TokenSource:
    def mint_now() -> str:
        from cloudkit.local.issuer.tokens import mint
        from cloudkit.local.stack.fulfillment import FulfillmentEndpoint

        try:
            endpoint = FulfillmentEndpoint.read(state_dir)
            return mint(Path(endpoint.issuer_dir), tenant=tenant, user=user, ttl_s=600)
        except FileNotFoundError:
            raise LoginError(f"no local stack in {state_dir} (is `cloudkit up` running?)") from None

    return mint_now


def _script(command: str) -> TokenSource:
    def run() -> str:
        # The person's own command from their own login (never a caller's data), hence a shell.
        done = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=TOKEN_SCRIPT_TIMEOUT_S
        )
        token = done.stdout.strip()
        if done.returncode != 0 or not token:
            # Its output is not shown: it may be a token.
            raise LoginError(f"the token script failed (exit code {done.returncode})")
        return token

    return run
