"""The local EDA activation: a rulebook run by real ansible-rulebook, with a webhook source.

`rulebook_text()` renders the rulebook (two webhook endpoints → the two playbooks) and
`SOURCES_DIR` holds the webhook source plugin passed to `ansible-rulebook -S`.
"""

from __future__ import annotations

from pathlib import Path

import yaml

SOURCES_DIR = Path(__file__).parent / "sources"
PROVISION_ENDPOINT = "provision"
DEPROVISION_ENDPOINT = "deprovision"


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
