"""The feedback's settings (CLOUDKIT_FULFILLMENT_*): off unless an address is given, every bad
value named, the token never read into the settings (the file is read before every call)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cloudkit.operator.settings import SERVICE_ACCOUNT_TOKEN, SettingsError, load_settings

EDA = {
    "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK": "http://eda:5000/provision",
    "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK": "http://eda:5000/deprovision",
}
ADDRESS = "https://fulfillment.example.com:8443"
TOKEN = "sa-token-5e1d-not-in-settings"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def problems(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    return str(raised.value)


@pytest.mark.parametrize("value", [None, "", "off"])
def test_no_address_no_feedback(value: str | None) -> None:
    env = dict(EDA) if value is None else {**EDA, "CLOUDKIT_FULFILLMENT_SERVER_ADDRESS": value}
    assert load_settings(env).feedback is None


def test_the_settings_and_their_defaults(token_file: Path, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        **EDA,
        "CLOUDKIT_FULFILLMENT_SERVER_ADDRESS": ADDRESS + "/",
        "CLOUDKIT_FULFILLMENT_TOKEN_FILE": str(token_file),
        "CLOUDKIT_FULFILLMENT_CA_BUNDLE": str(ca),
    }
    feedback = load_settings(env).feedback
    assert feedback is not None
    assert (feedback.address, feedback.token_file, feedback.ca_bundle) == (ADDRESS, token_file, ca)
    assert feedback.timeout == timedelta(seconds=10)
    assert feedback.retry_backoff_max == timedelta(seconds=30)
    assert feedback.workers == 16
    assert TOKEN not in repr(feedback), "the token is read per call, never kept"
    tuned = load_settings(
        {
            **env,
            "CLOUDKIT_FULFILLMENT_TIMEOUT": "2s",
            "CLOUDKIT_FULFILLMENT_RETRY_BACKOFF_MAX": "1m",
            "CLOUDKIT_FULFILLMENT_RESYNC_PERIOD": "30s",
            "CLOUDKIT_FULFILLMENT_WORKERS": "2",
        }
    ).feedback
    assert tuned is not None
    assert (tuned.timeout, tuned.retry_backoff_max, tuned.resync_period, tuned.workers) == (
        timedelta(seconds=2),
        timedelta(minutes=1),
        timedelta(seconds=30),
        2,
    )


def test_the_token_file_defaults_to_the_pods_service_account() -> None:
    text = problems({**EDA, "CLOUDKIT_FULFILLMENT_SERVER_ADDRESS": ADDRESS})
    assert f"CLOUDKIT_FULFILLMENT_TOKEN_FILE: cannot read {SERVICE_ACCOUNT_TOKEN}" in text


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("CLOUDKIT_FULFILLMENT_SERVER_ADDRESS", "http://plain:80", "must be an https:// URL"),
        ("CLOUDKIT_FULFILLMENT_CA_BUNDLE", "/nonexistent/ca.pem", "no such file"),
        ("CLOUDKIT_FULFILLMENT_TIMEOUT", "0s", "positive duration"),
        ("CLOUDKIT_FULFILLMENT_RETRY_BACKOFF_MAX", "soon", ""),
        ("CLOUDKIT_FULFILLMENT_WORKERS", "0", "at least 1"),
    ],
)
def test_a_bad_value_is_named(variable: str, value: str, said: str, token_file: Path) -> None:
    env = {
        **EDA,
        "CLOUDKIT_FULFILLMENT_SERVER_ADDRESS": ADDRESS,
        "CLOUDKIT_FULFILLMENT_TOKEN_FILE": str(token_file),
        variable: value,
    }
    text = problems(env)
    assert f"{variable}:" in text and said in text, text
