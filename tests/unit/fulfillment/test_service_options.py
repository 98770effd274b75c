"""`cloudkit fulfillment`'s options, checked before anything starts: each wrong one is an error
naming the option (and never echoing a database URL, which may carry a password)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cloudkit.fulfillment.service import OptionError, service_options
from cloudkit.local.apiserver.tls import ensure_certificate

ISSUER = "https://127.0.0.1:8443"


@pytest.fixture
def valid(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "tls").mkdir()
    cert, key = ensure_certificate(tmp_path / "tls")
    return {
        "state_dir": tmp_path / "state",
        "database": None,
        "host": "127.0.0.1",
        "port": 0,
        "tls_cert": cert,
        "tls_key": key,
        "issuers": [ISSUER],
        "audience": None,
        "issuer_ca": None,
        "kubeconfig": None,
        "in_cluster": False,
        "admins": [],
    }


def test_valid_options_default_to_sqlite_in_the_state_dir(valid: dict[str, Any]) -> None:
    options = service_options(**valid)
    assert options.database == f"sqlite:///{(valid['state_dir'] / 'fulfillment.db').resolve()}"
    assert options.address_file == valid["state_dir"].resolve() / "fulfillment.address"
    assert options.auth.issuers == (ISSUER,)


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"port": 70000}, "--port"),
        ({"tls_cert": None}, "--tls-cert"),
        ({"tls_key": Path("/nonexistent/key.pem")}, "--tls-key"),
        ({"issuers": ["http://insecure.example"]}, "--issuer"),
        ({"issuers": []}, "--issuer"),
        ({"audience": ""}, "--audience"),
        ({"admins": ["not-an-account"]}, "--admin"),
        ({"issuer_ca": Path("/nonexistent/ca.pem")}, "--issuer-ca"),
        ({"kubeconfig": Path("/nonexistent/kubeconfig")}, "--kubeconfig"),
        ({"database": "mysql://root:hunter2@db/x"}, "--db"),
    ],
)
def test_a_wrong_option_is_an_error_naming_it(
    valid: dict[str, Any], change: dict[str, Any], option: str
) -> None:
    with pytest.raises(OptionError) as caught:
        service_options(**{**valid, **change})
    assert str(caught.value).startswith(f"{option}:")
    assert "hunter2" not in str(caught.value)


def test_a_key_that_does_not_match_the_certificate_is_refused(
    valid: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    _, other_key = ensure_certificate(tmp_path / "other")
    with pytest.raises(OptionError, match=r"^--tls-cert/--tls-key:"):
        service_options(**{**valid, "tls_key": other_key})


def test_the_command_exits_2_naming_the_option(tmp_path: Path) -> None:
    cloudkit = Path(sys.executable).parent / "cloudkit"
    done = subprocess.run(
        [str(cloudkit), "fulfillment", "--state-dir", str(tmp_path), "--issuer", ISSUER],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--tls-cert: required" in done.stderr
