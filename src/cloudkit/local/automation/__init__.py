"""Local AWX-compatible automation service: job templates run by ansible-runner over REST.

Modules: `store` (SQLite), `listing` and `planning` and `render` (pure), `process` (the only
place that spawns and signals playbook processes), `executor` (worker pool and statuses),
`notify` (status webhooks), `web`/`views` (HTTP), `service` (start/stop), `main` (CLI).
Reached by the rest of cloudkit only over HTTP.
"""

from cloudkit.local.automation.service import AutomationHandle, start_automation_service

__all__ = ["AutomationHandle", "start_automation_service"]
