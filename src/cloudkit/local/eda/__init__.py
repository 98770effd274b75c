"""The local EDA activation: a rulebook run by real ansible-rulebook, with a webhook source.

`start_eda_activation()` (activation.py) runs the static rulebook.yml with the webhook source
in `SOURCES_DIR` and returns an `EdaHandle`. `rulebook_text()` renders an equivalent rulebook
with literal values; the stack's backend still uses it (until it moves to the activation).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cloudkit.local.eda.activation import (
    DEPROVISION_ENDPOINT,
    PROVISION_ENDPOINT,
    RULEBOOK,
    SOURCES_DIR,
    EdaHandle,
    EdaStartError,
    start_eda_activation,
)

__all__ = [
    "DEPROVISION_ENDPOINT",
    "PROVISION_ENDPOINT",
    "RULEBOOK",
    "SOURCES_DIR",
    "EdaHandle",
    "EdaStartError",
    "rulebook_text",
    "start_eda_activation",
]


def rulebook_text(*, host: str, port: int, token: str, playbooks: Path) -> str:
    """The rulebook: webhook events from the operator run provision.yml or deprovision.yml.

    The playbook receives the event as `ansible_eda.event`, so the ComputeInstance is
    `ansible_eda.event.payload`, exactly as with AAP direct launches. Actions run in
    parallel: a deprovision must not queue behind a long provision.
    """
    rules = [
        {
            "name": f"{endpoint.capitalize()} a ComputeInstance",
            "condition": f'event.meta.endpoint == "{endpoint}"',
            "action": {"run_playbook": {"name": str(playbooks / f"{endpoint}.yml")}},
        }
        for endpoint in (PROVISION_ENDPOINT, DEPROVISION_ENDPOINT)
    ]
    rulebook = [
        {
            "name": "cloudkit ComputeInstance automation",
            "hosts": "all",
            "execution_strategy": "parallel",
            "sources": [
                {
                    "name": "operator webhooks",
                    "webhook": {"host": host, "port": port, "token": token},
                }
            ],
            "rules": rules,
        }
    ]
    return yaml.safe_dump(rulebook, sort_keys=False)
