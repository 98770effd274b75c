"""The local EDA activation: a rulebook run by real ansible-rulebook, with a webhook source.

`start_eda_activation()` (activation.py) runs the static rulebook.yml with the webhook source
in `SOURCES_DIR` and returns an `EdaHandle`; `cloudkit up --provider eda` and the tests use it.
"""

from __future__ import annotations

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
    "start_eda_activation",
]
