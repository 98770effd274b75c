"""The operator's configuration: CLOUDKIT_* environment variables, validated once at start-up.

Names are upstream's (reference §7) so a deployment can switch implementations without new
config; ours are added beside them. Validation is stricter than upstream's: a bad value stops
the process with a message naming the variable instead of silently falling back to a default.
Secrets (the AAP token, the EDA webhook token, the notification token) are SecretStr: they
never appear in repr, str, logs, status or events. Tokens travel in headers, never in URLs: a
webhook URL with user info or a token query parameter stops the operator at start-up.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from cloudkit.operator import leadership
from cloudkit.operator.duration import parse_duration

DEFAULT_NAMESPACE = "cloudkit-computeinstance"
DEFAULT_METRICS_ADDRESS = "127.0.0.1:8080"
DEFAULT_MAX_LAUNCHES_IN_FLIGHT = 100
OFF_WORDS = frozenset({"", "off", "none", "disabled", "false", "0"})
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})

T = TypeVar("T")


class PollPolicy(StrEnum):
    ADAPTIVE = "adaptive"
    """Sub-second first poll, backing off to the poll interval (our default)."""
    FIXED = "fixed"
    """Upstream's (reference §3.1): every pass polls, requeue the full interval (benchmarks)."""


@dataclass(frozen=True, slots=True)
class Address:
    """A host:port to listen on."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class SettingsError(Exception):
    """One or more variables are invalid; each problem names its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class AapSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str
    token: SecretStr
    provision_template: str
    deprovision_template: str
    ca_bundle: Path | None = None
    verify_tls: bool = True


class EdaSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    provision_webhook: SecretStr
    """Never holds credentials (refused at start-up); secret anyway, as other query
    parameters of a deployment's URL may be private."""
    deprovision_webhook: SecretStr
    token: SecretStr | None = None
    """Sent as `Authorization: Bearer <token>` with every webhook; None = no auth (upstream)."""
    minimum_request_interval: timedelta = timedelta(0)


SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class FeedbackSettings(BaseModel):
    """Where the operator's feedback writes the records' status (feedback_sync.py): the
    fulfillment API's private side. Absent (no CLOUDKIT_FULFILLMENT_SERVER_ADDRESS): no feedback,
    the operator works alone. Timeout and back-off are explicit so a relay in front of the API
    (faults, a proxy) can be sized against them."""

    model_config = ConfigDict(frozen=True)

    address: str
    token_file: Path = SERVICE_ACCOUNT_TOKEN
    """Read again before every request (a projected token rotates)."""
    ca_bundle: Path | None = None
    """CA certificates for the API's TLS, beside the system's."""
    timeout: timedelta = timedelta(seconds=10)
    """Per request, connection included: an API that never answers costs this, no more."""
    retry_backoff_max: timedelta = timedelta(seconds=30)
    """Ceiling of the per-instance back-off after a failed call (from 0.5 s, doubling)."""
    resync_period: timedelta = timedelta(minutes=5)
    """Every instance is compared with its record again this often (someone else may have
    written the record meanwhile)."""
    workers: int = 16
    """Instances fed back at once: their own workers, never the reconcile's. Each pass waits on
    the network, not the CPU: with four, ten instances turning Ready (or deprovisioned) at once
    reached their records in three waves."""


class LeaderElectionSettings(BaseModel):
    """A Lease decides which replica acts (leadership.py); controller-runtime's defaults."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    lease_name: str = "cloudkit-operator-leader"
    namespace: str = "cloudkit-operator-system"
    identity: str = "cloudkit-operator"
    lease_duration: timedelta = timedelta(seconds=leadership.LEASE_DURATION_S)
    renew_deadline: timedelta = timedelta(seconds=leadership.RENEW_DEADLINE_S)
    retry_period: timedelta = timedelta(seconds=leadership.RETRY_PERIOD_S)


class OperatorSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: Literal["aap", "eda"]
    aap: AapSettings | None = None
    eda: EdaSettings | None = None
    poll_interval: timedelta = timedelta(seconds=30)
    aap_startup_timeout: timedelta = timedelta(seconds=30)
    """How long an unreachable AAP is retried at start before exiting with code 2."""
    poll_policy: PollPolicy = PollPolicy.ADAPTIVE
    first_poll: timedelta = timedelta(milliseconds=500)
    retry_backoff_min: timedelta = timedelta(minutes=2)
    retry_backoff_max: timedelta = timedelta(minutes=30)
    max_job_history: int = 10
    namespace: str | None = DEFAULT_NAMESPACE
    """The only namespace whose instances are reconciled; None = all namespaces."""
    workers: int = 8
    max_launches_in_flight: int = DEFAULT_MAX_LAUNCHES_IN_FLIGHT
    """Provisioning jobs launched (or about to be) and not yet terminal; 0 = no limit."""
    notification_address: Address | None = None
    notification_token: SecretStr | None = None
    metrics_address: Address | None = None
    health_address: Address | None = None
    leader_election: LeaderElectionSettings = LeaderElectionSettings()
    feedback: FeedbackSettings | None = None
    """The fulfillment API the records' status goes to; None = no feedback."""


class _Reader:
    """Reads variables from an environment, collecting every problem instead of stopping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        return None if value is None else value.strip()

    def parsed(self, name: str, parse: Callable[[str], T], default: T) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError as error:
            self.problems.append(f"{name}: {error}")
            return default

    def required(self, name: str, why: str) -> str:
        value = self.raw(name)
        if not value:
            self.problems.append(f"{name} is required {why}")
            return ""
        return value


def _positive_duration(text: str) -> timedelta:
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError(f"must be a positive duration, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _limit(text: str) -> int:
    """A count limit where 0 means no limit."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"must be an integer (0 = no limit), got {text!r}") from None
    if value < 0:
        raise ValueError(f"must be at least 0 (0 = no limit), got {value}")
    return value


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise ValueError(f"must be true or false, got {text!r}")


def parse_address(text: str) -> Address | None:
    """host:port (IPv6 in brackets); an empty value or "off" disables the listener."""
    if text.lower() in OFF_WORDS:
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"must be host:port (e.g. 127.0.0.1:8080) or off, got {text!r}")
    host = host.removeprefix("[").removesuffix("]")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv6 host in {text!r}") from None
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"invalid port in {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return Address(host, port)


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")) or len(text) <= len("https://"):
        # The value itself is not echoed: a webhook URL may carry a token.
        raise ValueError("must be an http:// or https:// URL")
    return text


def _token(env: _Reader, name: str, file_name: str) -> tuple[str, bool]:
    """The token from `name`, else from the file `file_name` names; (token, unreadable)."""
    token = env.raw(name) or ""
    token_file = env.raw(file_name)
    if not token and token_file:
        try:
            return Path(token_file).read_text().strip(), False
        except OSError as error:
            env.problems.append(f"{file_name}: cannot read: {error.strerror}")
            return "", True
    return token, False


def _webhook_url(text: str) -> str:
    """An http(s) URL without credentials in it; messages never echo the value."""
    url = _url(text)
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        raise ValueError("must be a valid http:// or https:// URL") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not carry credentials (user info); set CLOUDKIT_EDA_WEBHOOK_TOKEN instead"
        )
    if any("token" in key.lower() for key, _ in query):
        raise ValueError(
            "must not carry a token in its query; set CLOUDKIT_EDA_WEBHOOK_TOKEN instead"
        )
    return url


def _read_aap(env: _Reader) -> AapSettings | None:
    why = "when CLOUDKIT_PROVISIONING_PROVIDER is aap"
    before = len(env.problems)
    url = env.parsed("CLOUDKIT_AAP_URL", _url, "")
    if env.raw("CLOUDKIT_AAP_URL") is None:
        env.problems.append(f"CLOUDKIT_AAP_URL is required {why}")
    token, unreadable = _token(env, "CLOUDKIT_AAP_TOKEN", "CLOUDKIT_AAP_TOKEN_FILE")
    if not token and not unreadable:
        env.problems.append(
            f"CLOUDKIT_AAP_TOKEN (or CLOUDKIT_AAP_TOKEN_FILE) is required and non-empty {why}"
        )
    provision = env.required("CLOUDKIT_AAP_PROVISION_TEMPLATE", why)
    deprovision = env.required("CLOUDKIT_AAP_DEPROVISION_TEMPLATE", why)
    ca_bundle = env.raw("CLOUDKIT_AAP_CA_BUNDLE") or None
    if ca_bundle and not Path(ca_bundle).is_file():
        env.problems.append(f"CLOUDKIT_AAP_CA_BUNDLE: no such file: {ca_bundle}")
    insecure = env.parsed("CLOUDKIT_AAP_INSECURE_SKIP_VERIFY", _boolean, False)
    if len(env.problems) > before:
        return None
    return AapSettings(
        url=url,
        token=SecretStr(token),
        provision_template=provision,
        deprovision_template=deprovision,
        ca_bundle=Path(ca_bundle) if ca_bundle else None,
        verify_tls=not insecure,
    )


def _webhook(env: _Reader, name: str, older: str) -> str:
    """The current name wins; the pre-2026-02-11 name is still accepted."""
    chosen = name if env.raw(name) else older
    value = env.raw(chosen)
    if not value:
        env.problems.append(f"{name} (or {older}) is required when the provider is eda")
        return ""
    return env.parsed(chosen, _webhook_url, "")


def _read_eda(env: _Reader) -> EdaSettings | None:
    before = len(env.problems)
    prefix = "CLOUDKIT_COMPUTE_INSTANCE_"
    provision = _webhook(env, f"{prefix}PROVISION_WEBHOOK", f"{prefix}CREATE_WEBHOOK")
    deprovision = _webhook(env, f"{prefix}DEPROVISION_WEBHOOK", f"{prefix}DELETE_WEBHOOK")
    interval = env.parsed("CLOUDKIT_MINIMUM_REQUEST_INTERVAL", parse_duration, timedelta(0))
    # Optional, as upstream's webhooks have no auth; a file that is named must yield a token.
    token, unreadable = _token(env, "CLOUDKIT_EDA_WEBHOOK_TOKEN", "CLOUDKIT_EDA_WEBHOOK_TOKEN_FILE")
    if not token and not unreadable and env.raw("CLOUDKIT_EDA_WEBHOOK_TOKEN_FILE"):
        env.problems.append("CLOUDKIT_EDA_WEBHOOK_TOKEN_FILE: the file is empty")
    if len(env.problems) > before:
        return None
    return EdaSettings(
        provision_webhook=SecretStr(provision),
        deprovision_webhook=SecretStr(deprovision),
        token=SecretStr(token) if token else None,
        minimum_request_interval=interval,
    )


def _provider(text: str) -> Literal["aap", "eda"]:
    lowered = text.lower()
    if lowered == "aap":
        return "aap"
    if lowered == "eda" or not lowered:
        return "eda"
    raise ValueError(f"must be aap or eda, got {text!r}")


def _dns_name(text: str) -> str:
    """A Lease or namespace name: a DNS-1123 subdomain (lower case, digits, '-', '.')."""
    if not text or len(text) > 253 or not all(c.isalnum() or c in "-." for c in text):
        raise ValueError(f"must be a DNS-1123 name, got {text!r}")
    if text != text.lower() or not text[0].isalnum() or not text[-1].isalnum():
        raise ValueError(f"must be a DNS-1123 name, got {text!r}")
    return text


def _read_leader_election(env: _Reader) -> LeaderElectionSettings:
    prefix = "CLOUDKIT_LEADER_ELECTION"
    defaults = LeaderElectionSettings()
    timings = {
        field: env.parsed(f"{prefix}_{field.upper()}", _positive_duration, getattr(defaults, field))
        for field in ("lease_duration", "renew_deadline", "retry_period")
    }
    for problem in leadership.validate_timings(*(t.total_seconds() for t in timings.values())):
        env.problems.append(f"{prefix}_LEASE_DURATION/_RENEW_DEADLINE/_RETRY_PERIOD: {problem}")
    namespace = env.raw(f"{prefix}_NAMESPACE") or leadership.default_namespace()
    return LeaderElectionSettings(
        enabled=env.parsed(prefix, _boolean, True),
        lease_name=env.parsed(f"{prefix}_ID", _dns_name, defaults.lease_name),
        namespace=env.parsed(f"{prefix}_NAMESPACE", _dns_name, namespace),
        identity=env.raw(f"{prefix}_IDENTITY") or leadership.default_identity(env.environ),
        **timings,
    )


def _https_url(text: str) -> str:
    if not text.startswith("https://") or len(text) <= len("https://"):
        # A bearer token must not travel in the clear.
        raise ValueError(f"must be an https:// URL, got {text!r}")
    return text.rstrip("/")


def _read_feedback(env: _Reader) -> FeedbackSettings | None:
    """The feedback's settings, after upstream's OSAC_FULFILLMENT_SERVER_ADDRESS."""
    address = env.raw("CLOUDKIT_FULFILLMENT_SERVER_ADDRESS")
    if not address or address.lower() in OFF_WORDS:
        return None
    before = len(env.problems)
    url = env.parsed("CLOUDKIT_FULFILLMENT_SERVER_ADDRESS", _https_url, "")
    token_file = Path(env.raw("CLOUDKIT_FULFILLMENT_TOKEN_FILE") or SERVICE_ACCOUNT_TOKEN)
    try:
        token_file.read_text()
    except OSError as error:
        env.problems.append(
            f"CLOUDKIT_FULFILLMENT_TOKEN_FILE: cannot read {token_file}: {error.strerror}"
        )
    ca_bundle = env.raw("CLOUDKIT_FULFILLMENT_CA_BUNDLE") or None
    if ca_bundle and not Path(ca_bundle).is_file():
        env.problems.append(f"CLOUDKIT_FULFILLMENT_CA_BUNDLE: no such file: {ca_bundle}")
    defaults = FeedbackSettings(address="https://default")
    timeout = env.parsed("CLOUDKIT_FULFILLMENT_TIMEOUT", _positive_duration, defaults.timeout)
    backoff = env.parsed(
        "CLOUDKIT_FULFILLMENT_RETRY_BACKOFF_MAX", _positive_duration, defaults.retry_backoff_max
    )
    resync = env.parsed(
        "CLOUDKIT_FULFILLMENT_RESYNC_PERIOD", _positive_duration, defaults.resync_period
    )
    workers = env.parsed("CLOUDKIT_FULFILLMENT_WORKERS", _positive_int, defaults.workers)
    if len(env.problems) > before:
        return None
    return FeedbackSettings(
        address=url,
        token_file=token_file,
        ca_bundle=Path(ca_bundle) if ca_bundle else None,
        timeout=timeout,
        retry_backoff_max=backoff,
        resync_period=resync,
        workers=workers,
    )


def load_settings(environ: Mapping[str, str]) -> OperatorSettings:
    """Read and validate every variable; raise SettingsError listing all problems at once."""
    env = _Reader(environ)
    provider = env.parsed("CLOUDKIT_PROVISIONING_PROVIDER", _provider, "eda")
    aap = _read_aap(env) if provider == "aap" else None
    eda = _read_eda(env) if provider == "eda" else None
    poll_interval = env.parsed(
        "CLOUDKIT_AAP_STATUS_POLL_INTERVAL", _positive_duration, timedelta(seconds=30)
    )
    first_poll = env.parsed("CLOUDKIT_FIRST_POLL", _positive_duration, timedelta(milliseconds=500))
    backoff_min = env.parsed("CLOUDKIT_RETRY_BACKOFF_MIN", _positive_duration, timedelta(minutes=2))
    backoff_max = env.parsed(
        "CLOUDKIT_RETRY_BACKOFF_MAX", _positive_duration, timedelta(minutes=30)
    )
    if backoff_max < backoff_min:
        env.problems.append(
            "CLOUDKIT_RETRY_BACKOFF_MAX: must not be shorter than CLOUDKIT_RETRY_BACKOFF_MIN"
        )
    startup_timeout = env.parsed(
        "CLOUDKIT_AAP_STARTUP_TIMEOUT", parse_duration, timedelta(seconds=30)
    )
    policy = env.parsed("CLOUDKIT_POLL_POLICY", PollPolicy, PollPolicy.ADAPTIVE)
    namespace = env.raw("CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE")
    notification_token = env.raw("CLOUDKIT_NOTIFICATION_TOKEN")
    settings = OperatorSettings(
        provider=provider,
        aap=aap,
        eda=eda,
        poll_interval=poll_interval,
        aap_startup_timeout=startup_timeout,
        poll_policy=policy,
        first_poll=first_poll,
        retry_backoff_min=backoff_min,
        retry_backoff_max=backoff_max,
        max_job_history=env.parsed("CLOUDKIT_MAX_JOB_HISTORY", _positive_int, 10),
        namespace=DEFAULT_NAMESPACE if namespace is None else (namespace or None),
        workers=env.parsed("CLOUDKIT_WORKERS", _positive_int, 8),
        max_launches_in_flight=env.parsed(
            "CLOUDKIT_MAX_LAUNCHES_IN_FLIGHT", _limit, DEFAULT_MAX_LAUNCHES_IN_FLIGHT
        ),
        notification_address=env.parsed("CLOUDKIT_NOTIFICATION_ADDRESS", parse_address, None),
        notification_token=SecretStr(notification_token) if notification_token else None,
        metrics_address=env.parsed(
            "CLOUDKIT_METRICS_ADDRESS", parse_address, parse_address(DEFAULT_METRICS_ADDRESS)
        ),
        health_address=env.parsed("CLOUDKIT_HEALTH_ADDRESS", parse_address, None),
        leader_election=_read_leader_election(env),
        feedback=_read_feedback(env),
    )
    if env.problems:
        raise SettingsError(env.problems)
    return settings
