"""Settings from the environment: defaults, upstream names, bad variables named, secrets hidden."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cloudkit.operator.duration import parse_duration
from cloudkit.operator.settings import (
    Address,
    PollPolicy,
    SettingsError,
    load_settings,
    parse_address,
)

TOKEN = "s3cr3t-token-value-7f2a"
AAP = {
    "CLOUDKIT_PROVISIONING_PROVIDER": "aap",
    "CLOUDKIT_AAP_URL": "https://aap.example.com/api/controller",
    "CLOUDKIT_AAP_TOKEN": TOKEN,
    "CLOUDKIT_AAP_PROVISION_TEMPLATE": "create-vm",
    "CLOUDKIT_AAP_DEPROVISION_TEMPLATE": "delete-vm",
}
EDA_TOKEN = "eda-hook-secret-4c1e"
EDA = {
    "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK": "http://eda:5000/provision?tenant=abc",
    "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK": "http://eda:5000/deprovision",
    "CLOUDKIT_EDA_WEBHOOK_TOKEN": EDA_TOKEN,
}


def problems(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    return str(raised.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("1m30s", 90),
        ("500ms", 0.5),
        ("1.5h", 5400),
        ("2h45m", 9900),
        ("0", 0),
        ("100us", 0.0001),
        ("250µs", 0.00025),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "s", "1x", "-5s", "1m 30s", "abc", ".s", "5 s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_defaults_are_upstreams() -> None:
    settings = load_settings(EDA)
    assert settings.provider == "eda"
    assert settings.namespace == "cloudkit-computeinstance"
    assert settings.poll_interval == timedelta(seconds=30)
    assert settings.first_poll == timedelta(milliseconds=500)
    assert settings.max_job_history == 10
    assert settings.poll_policy is PollPolicy.ADAPTIVE
    assert settings.metrics_address == Address("127.0.0.1", 8080)
    assert settings.notification_address is None
    assert settings.health_address is None
    assert settings.max_launches_in_flight == 100


@pytest.mark.parametrize(("text", "limit"), [("2", 2), ("0", 0), (" 250 ", 250)])
def test_launch_limit(text: str, limit: int) -> None:
    settings = load_settings({**AAP, "CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT": text})
    assert settings.max_launches_in_flight == limit  # 0 = no limit


def test_aap_settings() -> None:
    settings = load_settings(
        {
            **AAP,
            "CLOUDKIT_AAP_STATUS_POLL_INTERVAL": "1m30s",
            "CLOUDKIT_AAP_INSECURE_SKIP_VERIFY": "true",
            "CLOUDKIT_POLL_POLICY": "fixed",
            "CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE": "",
            "CLOUDKIT_NOTIFICATION_ADDRESS": "[::1]:9000",
            "CLOUDKIT_METRICS_ADDRESS": "off",
        }
    )
    assert settings.aap is not None
    assert settings.aap.token.get_secret_value() == TOKEN
    assert settings.aap.verify_tls is False
    assert settings.poll_interval == timedelta(seconds=90)
    assert settings.poll_policy is PollPolicy.FIXED
    assert settings.namespace is None  # empty = all namespaces
    assert settings.notification_address == Address("::1", 9000)
    assert str(settings.notification_address) == "[::1]:9000"
    assert settings.metrics_address is None


def test_token_never_in_repr_or_str() -> None:
    settings = load_settings({**AAP, "CLOUDKIT_NOTIFICATION_TOKEN": "notify-secret-91"})
    for text in (repr(settings), str(settings), repr(settings.aap), str(settings.model_dump())):
        assert TOKEN not in text
        assert "notify-secret-91" not in text
    eda = load_settings(EDA)
    assert EDA_TOKEN not in repr(eda) and EDA_TOKEN not in str(eda.model_dump())
    assert "tenant=abc" not in repr(eda)


def test_token_from_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {**AAP, "CLOUDKIT_AAP_TOKEN_FILE": str(token_file)}
    del env["CLOUDKIT_AAP_TOKEN"]
    settings = load_settings(env)
    assert settings.aap is not None
    assert settings.aap.token.get_secret_value() == TOKEN


def test_unreadable_token_file_is_named(tmp_path: Path) -> None:
    env = {**AAP, "CLOUDKIT_AAP_TOKEN_FILE": str(tmp_path / "missing")}
    del env["CLOUDKIT_AAP_TOKEN"]
    assert "CLOUDKIT_AAP_TOKEN_FILE" in problems(env)


@pytest.mark.parametrize(
    "variable",
    [
        "CLOUDKIT_AAP_URL",
        "CLOUDKIT_AAP_TOKEN",
        "CLOUDKIT_AAP_PROVISION_TEMPLATE",
        "CLOUDKIT_AAP_DEPROVISION_TEMPLATE",
    ],
)
def test_missing_aap_variable_is_named(variable: str) -> None:
    env = {k: v for k, v in AAP.items() if k != variable}
    assert variable in problems(env)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CLOUDKIT_PROVISIONING_PROVIDER", "ansible"),
        ("CLOUDKIT_AAP_URL", "aap.example.com"),
        ("CLOUDKIT_AAP_STATUS_POLL_INTERVAL", "0"),
        ("CLOUDKIT_AAP_STATUS_POLL_INTERVAL", "30"),
        ("CLOUDKIT_AAP_STATUS_POLL_INTERVAL", "soon"),
        ("CLOUDKIT_AAP_CA_BUNDLE", "/nonexistent/ca.pem"),
        ("CLOUDKIT_AAP_INSECURE_SKIP_VERIFY", "maybe"),
        ("CLOUDKIT_MAX_JOB_HISTORY", "0"),
        ("CLOUDKIT_MAX_JOB_HISTORY", "ten"),
        ("CLOUDKIT_POLL_POLICY", "sometimes"),
        ("CLOUDKIT_FIRST_POLL", "0"),
        ("CLOUDKIT_RETRY_BACKOFF_MIN", "fast"),
        ("CLOUDKIT_RETRY_BACKOFF_MAX", "1s"),
        ("CLOUDKIT_NOTIFICATION_ADDRESS", "8080"),
        ("CLOUDKIT_METRICS_ADDRESS", "localhost:http"),
        ("CLOUDKIT_HEALTH_ADDRESS", "127.0.0.1:70000"),
        ("CLOUDKIT_WORKERS", "-1"),
        ("CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT", "-1"),
        ("CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT", "many"),
        ("CLOUDKIT_AAP_STARTUP_TIMEOUT", "later"),
    ],
)
def test_bad_variable_is_named(variable: str, value: str) -> None:
    message = problems({**AAP, variable: value})
    assert variable in message
    assert TOKEN not in message


def test_every_problem_is_reported_at_once() -> None:
    env = {
        "CLOUDKIT_PROVISIONING_PROVIDER": "aap",
        "CLOUDKIT_AAP_STATUS_POLL_INTERVAL": "0",
        "CLOUDKIT_MAX_JOB_HISTORY": "0",
    }
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    text = "\n".join(raised.value.problems)
    for variable in (
        "CLOUDKIT_AAP_URL",
        "CLOUDKIT_AAP_TOKEN",
        "CLOUDKIT_AAP_STATUS_POLL_INTERVAL",
        "CLOUDKIT_MAX_JOB_HISTORY",
    ):
        assert variable in text


def test_eda_needs_both_webhooks_under_either_name() -> None:
    assert "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK" in problems({})
    older = {
        "CLOUDKIT_COMPUTE_INSTANCE_CREATE_WEBHOOK": "http://eda/create",
        "CLOUDKIT_COMPUTE_INSTANCE_DELETE_WEBHOOK": "http://eda/delete",
        "CLOUDKIT_MINIMUM_REQUEST_INTERVAL": "2s",
    }
    settings = load_settings(older)
    assert settings.eda is not None
    assert settings.eda.provision_webhook.get_secret_value() == "http://eda/create"
    assert settings.eda.minimum_request_interval == timedelta(seconds=2)
    bad_url = problems({**EDA, "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK": "ftp://x?token=zz"})
    assert "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK" in bad_url
    assert "token=zz" not in bad_url


def test_eda_webhook_token_is_a_header_token() -> None:
    settings = load_settings(EDA)
    assert settings.eda is not None and settings.eda.token is not None
    assert settings.eda.token.get_secret_value() == EDA_TOKEN
    without = {k: v for k, v in EDA.items() if k != "CLOUDKIT_EDA_WEBHOOK_TOKEN"}
    eda = load_settings(without).eda
    assert eda is not None and eda.token is None  # upstream's webhooks have no auth


def test_eda_webhook_token_from_file(tmp_path: Path) -> None:
    token_file = tmp_path / "webhook-token"
    token_file.write_text(EDA_TOKEN + "\n")
    env = {**EDA, "CLOUDKIT_EDA_WEBHOOK_TOKEN_FILE": str(token_file)}
    del env["CLOUDKIT_EDA_WEBHOOK_TOKEN"]
    eda = load_settings(env).eda
    assert eda is not None and eda.token is not None
    assert eda.token.get_secret_value() == EDA_TOKEN
    assert "CLOUDKIT_EDA_WEBHOOK_TOKEN_FILE" in problems(
        {**env, "CLOUDKIT_EDA_WEBHOOK_TOKEN_FILE": str(tmp_path / "missing")}
    )
    (tmp_path / "empty").write_text("\n")
    empty = problems({**env, "CLOUDKIT_EDA_WEBHOOK_TOKEN_FILE": str(tmp_path / "empty")})
    assert "CLOUDKIT_EDA_WEBHOOK_TOKEN_FILE" in empty


@pytest.mark.parametrize(
    ("variable", "url", "secret"),
    [
        ("CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK", "http://eda/p?token=zz-91", "zz-91"),
        ("CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK", "http://eda/p?a=1&TOKEN=zz-92", "zz-92"),
        (
            "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
            "http://eda/d?access_token=zz-93",
            "zz-93",
        ),
        ("CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK", "https://bob:zz-94@eda/d", "zz-94"),
        ("CLOUDKIT_COMPUTE_INSTANCE_CREATE_WEBHOOK", "https://zz-95@eda/c", "zz-95"),
    ],
)
def test_webhook_url_with_credentials_is_refused(variable: str, url: str, secret: str) -> None:
    env = {**EDA, variable: url}
    if variable.endswith("CREATE_WEBHOOK"):
        del env["CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK"]
    message = problems(env)
    assert variable in message
    assert "CLOUDKIT_EDA_WEBHOOK_TOKEN" in message  # says where the token goes instead
    assert secret not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", Address("127.0.0.1", 8080)),
        ("0.0.0.0:0", Address("0.0.0.0", 0)),
        ("[::]:9090", Address("::", 9090)),
        ("off", None),
        ("", None),
    ],
)
def test_addresses(text: str, expected: Address | None) -> None:
    assert parse_address(text) == expected


def test_leader_election_is_on_by_default_with_controller_runtimes_timings() -> None:
    election = load_settings(EDA).leader_election
    assert election.enabled
    assert (election.lease_name, election.namespace) == (
        "cloudkit-operator-leader",
        "cloudkit-operator-system",
    )
    assert (election.lease_duration, election.renew_deadline, election.retry_period) == (
        timedelta(seconds=15),
        timedelta(seconds=10),
        timedelta(seconds=2),
    )
    assert election.identity  # <host>_<pid> outside a cluster


def test_leader_election_variables() -> None:
    election = load_settings(
        {
            **EDA,
            "CLOUDKIT_LEADER_ELECTION": "false",
            "CLOUDKIT_LEADER_ELECTION_ID": "my-lease",
            "CLOUDKIT_LEADER_ELECTION_NAMESPACE": "ops",
            "CLOUDKIT_LEADER_ELECTION_IDENTITY": "replica-a",
            "CLOUDKIT_LEADER_ELECTION_LEASE_DURATION": "4s",
            "CLOUDKIT_LEADER_ELECTION_RENEW_DEADLINE": "3s",
            "CLOUDKIT_LEADER_ELECTION_RETRY_PERIOD": "500ms",
        }
    ).leader_election
    assert not election.enabled
    assert (election.lease_name, election.namespace, election.identity) == (
        "my-lease",
        "ops",
        "replica-a",
    )
    assert election.retry_period == timedelta(milliseconds=500)


def test_bad_leader_election_values_are_named() -> None:
    text = problems(
        {
            **EDA,
            "CLOUDKIT_LEADER_ELECTION": "maybe",
            "CLOUDKIT_LEADER_ELECTION_ID": "Not_A_Name",
            "CLOUDKIT_LEADER_ELECTION_NAMESPACE": "-ops",
            "CLOUDKIT_LEADER_ELECTION_RETRY_PERIOD": "0s",
        }
    )
    for name in (
        "CLOUDKIT_LEADER_ELECTION:",
        "CLOUDKIT_LEADER_ELECTION_ID:",
        "CLOUDKIT_LEADER_ELECTION_NAMESPACE:",
        "CLOUDKIT_LEADER_ELECTION_RETRY_PERIOD:",
    ):
        assert name in text
    timing = problems({**EDA, "CLOUDKIT_LEADER_ELECTION_RENEW_DEADLINE": "20s"})
    assert "the lease duration must be longer than the renew deadline" in timing
