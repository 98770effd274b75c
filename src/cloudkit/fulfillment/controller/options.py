"""`cloudkit fulfillment-controller`'s options, checked before anything starts: a wrong one is
an error naming the option (and the command exits 2)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cloudkit.operator import leadership
from cloudkit.operator.settings import LeaderElectionSettings

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class OptionError(ValueError):
    """An option the controller cannot start with; the message starts with the option's name."""


@dataclass(frozen=True)
class ControllerOptions:
    address: str
    ca_file: Path | None
    token_file: Path
    hub_kubeconfigs: Path
    kubeconfig: Path | None
    """The cluster holding the Lease (default: KUBECONFIG, in-cluster, ~/.kube/config)."""
    election: LeaderElectionSettings
    resync: timedelta
    rewatch: timedelta
    recheck: timedelta
    """How often a record waiting for its resource to go looks again without an event."""
    stream_lifetime: timedelta
    """How long one subscription to the event stream is followed at most before it is opened
    again (and the records listed)."""
    workers: int


def controller_options(
    *,
    address: str,
    ca_file: Path | None,
    token_file: Path | None,
    hub_kubeconfigs: Path | None,
    kubeconfig: Path | None,
    leader_election: bool,
    lease_name: str,
    lease_namespace: str | None,
    identity: str | None,
    resync_s: float,
    rewatch_s: float,
    workers: int,
    environ: dict[str, str],
    recheck_s: float = 10.0,
    stream_lifetime_s: float = 60.0,
) -> ControllerOptions:
    """The options checked together; OptionError names the first wrong one."""
    if not address.startswith(("https://", "http://")):
        raise OptionError(f"--address: expected https://HOST:PORT, got {address!r}")
    if token_file is None:
        token_file = SERVICE_ACCOUNT_TOKEN
    for option, path in (("--ca-file", ca_file), ("--token-file", token_file)):
        if path is not None and not path.is_file():
            raise OptionError(f"--{option.lstrip('-')}: {path} is not a readable file")
    if kubeconfig is not None and not kubeconfig.is_file():
        raise OptionError(f"--kubeconfig: {kubeconfig} is not a readable file")
    if hub_kubeconfigs is None or not hub_kubeconfigs.is_dir():
        raise OptionError(
            f"--hub-kubeconfigs: {hub_kubeconfigs} is not a directory (one kubeconfig per "
            "hub, named as the hubs' kubeconfig_ref)"
        )
    for option, value in (
        ("--resync-seconds", resync_s),
        ("--rewatch-seconds", rewatch_s),
        ("--recheck-seconds", recheck_s),
        ("--stream-lifetime-seconds", stream_lifetime_s),
    ):
        if not value > 0:
            raise OptionError(f"{option}: must be positive, got {value}")
    if workers < 1:
        raise OptionError(f"--workers: must be at least 1, got {workers}")
    namespace = lease_namespace or leadership.default_namespace()
    for option, name in (("--lease-name", lease_name), ("--lease-namespace", namespace)):
        if not _DNS_NAME.match(name):
            raise OptionError(f"{option}: must be a DNS-1123 name, got {name!r}")
    election = LeaderElectionSettings(
        enabled=leader_election,
        lease_name=lease_name,
        namespace=namespace,
        identity=identity or leadership.default_identity(environ),
    )
    return ControllerOptions(
        address=address,
        ca_file=ca_file,
        token_file=token_file,
        hub_kubeconfigs=hub_kubeconfigs,
        kubeconfig=kubeconfig,
        election=election,
        resync=timedelta(seconds=resync_s),
        rewatch=timedelta(seconds=rewatch_s),
        recheck=timedelta(seconds=recheck_s),
        stream_lifetime=timedelta(seconds=stream_lifetime_s),
        workers=workers,
    )
