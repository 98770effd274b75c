"""Receiver of AWX job notification webhooks: a job changed state → reconcile its instance now.

AWX notification templates of the webhook type POST a JSON body with the job's `id`, `status`
and `extra_vars` (a JSON string). Our launches put the whole instance in
`extra_vars.ansible_eda.event.payload`, so its namespace and name identify whom to wake.
Without a token (CLOUDKIT_NOTIFICATION_TOKEN) a notification carries no authority: it only
makes the reconcile come earlier, and the reconcile reads the job from AAP itself. With one,
the body of a notification that presents it is also the job's reading (`job_reading_of`: its
id, type and status, as a GET of the job would answer), handed to `heard` for the next pass
instead of a poll (notified_readings.py). The token is accepted only as
`Authorization: Bearer <token>` (scheme case-insensitive, RFC 7235) and compared in constant
time. A `token` query parameter is refused with 401 whatever else the
request carries: a URL ends up in access logs and proxies, so no token may be put there.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from cloudkit.api.jobs import JobReading
from cloudkit.operator.kube_objects import InstanceKey
from cloudkit.operator.settings import Address
from cloudkit.providers.aap import wire

log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
"""A notification carries the whole instance in extra_vars; bigger bodies are refused."""


def instance_of(notification: Mapping[str, Any]) -> InstanceKey | None:
    """The instance a notification is about, or None if it names none."""
    extra_vars: Any = notification.get("extra_vars")
    if isinstance(extra_vars, str):
        try:
            extra_vars = json.loads(extra_vars) if extra_vars else {}
        except ValueError:
            return None
    if not isinstance(extra_vars, Mapping):
        return None
    payload = _path(extra_vars, "ansible_eda", "event", "payload")
    metadata = _path(payload, "metadata") if isinstance(payload, Mapping) else None
    if not isinstance(metadata, Mapping):
        return None
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if not isinstance(name, str) or not isinstance(namespace, str) or not name or not namespace:
        return None
    return InstanceKey(namespace, name)


def job_reading_of(notification: Mapping[str, Any]) -> JobReading | None:
    """The job reading a notification's body carries (AWX's `id`, `type` and `status`, and the
    explanation of a failure), under the id the status records (`wire.AapJobId`); None when it
    names no job of a kind we launch, or no status."""
    number, kind = notification.get("id"), notification.get("type", wire.JobKind.JOB.value)
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        return None
    if kind not in (wire.JobKind.JOB.value, wire.JobKind.WORKFLOW.value):
        return None
    job_id = wire.AapJobId(wire.JobKind(kind), number)
    return wire.reading_from_job(str(job_id), notification)


def _path(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def bearer_token(headers: Mapping[str, str]) -> str:
    """The credentials of an `Authorization: Bearer <token>` header ("" if none)."""
    scheme, _, credentials = headers.get("Authorization", "").strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


class NotificationReceiver:
    def __init__(
        self,
        address: Address,
        wake: Callable[[InstanceKey], None],
        *,
        token: SecretStr | None = None,
        heard: Callable[[InstanceKey, JobReading], bool] | None = None,
    ) -> None:
        """`heard` receives the reading of each notification that presented the token (never
        called without a token: an unauthenticated body could claim any state) and says
        whether it may be news; one that is not wakes nobody."""
        self._address = address
        self._wake = wake
        self._token = token
        self._heard = heard if token is not None else None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def _refusal(self, request: web.Request) -> str | None:
        """Why the request is not authorized (words for a log line, no secret), or None."""
        if "token" in request.query:
            return "a token in the URL query is not accepted; send Authorization: Bearer"
        if self._token is None:
            return None
        expected = self._token.get_secret_value().encode()
        if not hmac.compare_digest(bearer_token(request.headers).encode(), expected):
            return "missing or wrong bearer token"
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            log.warning("job notification refused (401): %s", refusal)
            return web.json_response({"detail": "unauthorized"}, status=401)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"detail": "body must be JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"detail": "body must be a JSON object"}, status=400)
        key = instance_of(body)
        if key is None:
            # Not ours (or a test notification): accepted, nothing to wake.
            return web.json_response({"woken": None}, status=202)
        log.debug("job %s is %s: waking %s", body.get("id"), body.get("status"), key)
        if self._heard is not None:
            reading = job_reading_of(body)
            if reading is not None and not self._heard(key, reading):
                return web.json_response({"woken": None}, status=202)
        self._wake(key)
        return web.json_response({"woken": str(key)}, status=202)

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/", self._handle)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        # reuse_port: replicas on one host share the address; only the leader listens on it
        # (shell.py), and a new leader can bind while the old one is still closing.
        site = web.TCPSite(self._runner, self._address.host, self._address.port, reuse_port=True)
        await site.start()
        server: Any = site._server
        sockets = server.sockets if server is not None else []
        self.port = sockets[0].getsockname()[1] if sockets else self._address.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
