"""Ansible action `event_payload_as_data`: the event payload (`ansible_eda.event.payload`) as
plain data that Ansible never renders, whatever trust the extra vars arrived with.

Ansible renders a string variable holding Jinja whenever a playbook uses it, and every way of
using a variable from a playbook (a filter, `vars`, `hostvars`, a lookup) uses it first: only
`!unsafe` marks protect it, and only the sender can set them. AWX sets them on launch-time
variables by default; ansible-rulebook's run_playbook does not, nor does AWX with
ALLOW_JINJA_IN_EXTRA_VARS=always. An action plugin receives the variables unrendered; this one
copies the payload into plain JSON values (which drops Ansible's trust marks) and returns it as
its result, and a registered result is never rendered (ansible-core 2.19 trusts no module or
action result). The play then reads the instance from the result, never from the extra var.

Lives beside the playbooks (Ansible loads `action_plugins/` next to a playbook; AWX projects
and ansible-rulebook's copy of the playbook directory keep it there). Standard library and
ansible-core's public ActionBase only.
"""

from __future__ import annotations

import json
from typing import Any

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):  # type: ignore[misc]  # ansible-core ships no type hints
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        event = ((task_vars or {}).get("ansible_eda") or {}).get("event") or {}
        if "payload" not in event:
            return {**result, "failed": True, "msg": "ansible_eda.event.payload is not set"}
        try:
            # A JSON round trip yields new str/dict/list objects without Ansible's tags.
            payload = json.loads(json.dumps(event["payload"]))
        except (TypeError, ValueError) as error:
            return {**result, "failed": True, "msg": f"the payload is not JSON data: {error}"}
        return {**result, "changed": False, "payload": payload}
