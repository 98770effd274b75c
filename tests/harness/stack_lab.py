"""A started local stack (start_stack), its clients, a recorder of every instance
version, and the means to kill and restart the stack's children as a crash or an outage would.

Everything goes over real sockets: the API server through its HTTPS REST API, the automation
service through its AWX API, the operator as the `cloudkit operator` subprocess the stack
started. A child is restarted with the exact command line, environment and working directory
it was started with (read from /proc), so a restarted operator is the operator the stack ran:
under deploy/operator's ServiceAccount, as `cloudkit up` runs it (checked when the lab opens).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from cloudkit.api import names
from cloudkit.local.stack import INSTANCE_NAMESPACE, StackHandle, start_stack
from cloudkit.local.stack.backends import write_templates
from cloudkit.local.stack.kube import KubeAccess, KubeClient, KubeError, WatchExpired, resource_path
from cloudkit.local.stack.operator_account import kubeconfig_username, service_account_username
from cloudkit.local.stack.procs import Child, spawn, wait_for_port
from cloudkit.scenarios.validations import Snapshot

NAMESPACE = INSTANCE_NAMESPACE
INSTANCES = resource_path(names.GROUP, names.VERSION, names.PLURAL, namespace=NAMESPACE)
VMS = resource_path(names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, names.VM_PLURAL)
EVENTS = resource_path("", "v1", "events")
PROVISION_TEMPLATE = "cloudkit-provision-compute-instance"
DEPROVISION_TEMPLATE = "cloudkit-deprovision-compute-instance"
RESTART_TIMEOUT_S = 60.0
# AWX job status → the state the operator must end up recording for it.
STATE_OF_STATUS = {
    "successful": "Succeeded",
    "failed": "Failed",
    "error": "Failed",
    "canceled": "Canceled",
}
ACTIVE_STATUSES = {"new", "pending", "waiting", "running"}


# --- the automation service, as its AWX API shows it ---------------------------------------------


@dataclass(frozen=True)
class AutomationJob:
    id: str
    template: str
    status: str
    created: str
    finished: str | None
    instance: str
    """`metadata.name` of the ComputeInstance in the job's payload."""
    correlation_id: str

    @property
    def kind(self) -> str:
        if self.template == PROVISION_TEMPLATE:
            return "provision"
        if self.template == DEPROVISION_TEMPLATE:
            return "deprovision"
        return self.template

    @property
    def terminal(self) -> bool:
        return self.status not in ACTIVE_STATUSES


def _job_from(row: Mapping[str, Any]) -> AutomationJob:
    try:
        extra = json.loads(row.get("extra_vars") or "{}")
    except ValueError:
        extra = {}
    payload = (((extra.get("ansible_eda") or {}).get("event") or {}).get("payload")) or {}
    return AutomationJob(
        id=str(row["id"]),
        template=str(row.get("name", "")),
        status=str(row.get("status", "")),
        created=str(row.get("created") or ""),
        finished=row.get("finished"),
        instance=str((payload.get("metadata") or {}).get("name", "")),
        correlation_id=str(extra.get("cloudkit_correlation_id", "")),
    )


class AutomationJobs:
    """A reader of the automation service's job list (bearer token, like the operator)."""

    def __init__(self, handle: StackHandle) -> None:
        self._handle = handle

    async def jobs(self) -> list[AutomationJob]:
        token = self._handle.automation_token
        base = self._handle.automation_url.rstrip("/")
        origin = re.sub(r"^(https?://[^/]+).*$", r"\1", base)
        url: str | None = f"{base}/v2/jobs/?page_size=200&order_by=id"
        found: list[AutomationJob] = []
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        ) as session:
            while url:
                async with session.get(url) as response:
                    response.raise_for_status()
                    body = await response.json()
                found.extend(_job_from(row) for row in body["results"])
                nxt = body.get("next")
                url = (nxt if nxt.startswith("http") else origin + nxt) if nxt else None
        return found

    async def jobs_of(self, instance: str) -> list[AutomationJob]:
        return [job for job in await self.jobs() if job.instance == instance]


# --- every version of every instance, from one watch ---------------------------------------------


class Recorder:
    """Watches the instance namespace and keeps every version of every instance it sees."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube
        self._t0 = time.monotonic()
        self.versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.seen_at: dict[str, list[float]] = defaultdict(list)
        self.gone: dict[str, float] = {}
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._listed = asyncio.Event()

    def now(self) -> float:
        return time.monotonic() - self._t0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="instance-recorder")
        await asyncio.wait_for(self._listed.wait(), 30)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        version = ""
        while True:
            try:
                if not version:
                    listed = await self._kube.list_objects(INSTANCES)
                    for obj in listed.get("items") or []:
                        await self._record("ADDED", obj)
                    version = str(listed["metadata"]["resourceVersion"])
                    self._listed.set()
                async for kind, obj in self._kube.watch(INSTANCES, version, timeoutSeconds="30"):
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if kind in {"ADDED", "MODIFIED", "DELETED"}:
                        await self._record(kind, obj)
            except WatchExpired:
                version = ""
            except (aiohttp.ClientError, KubeError, OSError, ValueError):
                await asyncio.sleep(0.2)  # the API server hiccuped; reconnect from `version`

    async def _record(self, kind: str, obj: dict[str, Any]) -> None:
        name = str(obj["metadata"]["name"])
        history = self.versions[name]
        rv = obj["metadata"].get("resourceVersion")
        if not history or history[-1]["metadata"].get("resourceVersion") != rv:
            history.append(obj)
            self.seen_at[name].append(self.now())
        if kind == "DELETED":
            self.gone[name] = self.now()
        async with self._changed:
            self._changed.notify_all()

    def latest(self, name: str) -> dict[str, Any] | None:
        history = self.versions.get(name)
        return history[-1] if history else None

    def snapshots(self, name: str) -> list[Snapshot]:
        return [
            Snapshot(
                at=at,
                resource_version=str(obj["metadata"].get("resourceVersion", "")),
                deleting=bool(obj["metadata"].get("deletionTimestamp")),
                status=dict(obj.get("status") or {}),
            )
            for obj, at in zip(self.versions.get(name, []), self.seen_at.get(name, []), strict=True)
        ]

    async def wait_for(self, check: Callable[[], bool], *, within: float, what: str) -> float:
        """Until `check()` holds, re-checked on every recorded version; the seconds it took."""
        started = time.monotonic()

        async def satisfied() -> None:
            async with self._changed:
                await self._changed.wait_for(check)

        try:
            await asyncio.wait_for(satisfied(), within)
        except TimeoutError:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}") from None
        return time.monotonic() - started


def status_of(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict((obj or {}).get("status") or {})


def job_of(obj: Mapping[str, Any] | None, kind: str) -> dict[str, Any]:
    key = "provisionJob" if kind == "provision" else "deprovisionJob"
    return dict(status_of(obj).get(key) or {})


def recorded_job_ids(versions: list[dict[str, Any]], kind: str) -> set[str]:
    """Every job id of a type any version showed (current job or history)."""
    ids: set[str] = set()
    for obj in versions:
        current = job_of(obj, kind)
        if current.get("id"):
            ids.add(str(current["id"]))
        for entry in status_of(obj).get("jobs") or []:
            if entry.get("type") == kind and entry.get("jobID"):
                ids.add(str(entry["jobID"]))
    return ids


# --- restarting children -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildSpec:
    """How a child of the stack was started: enough to start it again the same way."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path

    @classmethod
    def of(cls, child: Child) -> ChildSpec:
        proc = Path(f"/proc/{child.pid}")
        argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        env = dict(
            item.decode().split("=", 1)
            for item in (proc / "environ").read_bytes().split(b"\0")
            if b"=" in item
        )
        return cls(child.name, argv, env, Path(os.readlink(proc / "cwd")))


# --- the lab -------------------------------------------------------------------------------------


@dataclass
class Lab:
    handle: StackHandle
    kube: KubeClient
    automation: AutomationJobs
    recorder: Recorder
    specs: dict[str, ChildSpec] = field(default_factory=dict)

    # instances

    async def create(
        self, name: str, *, annotations: Mapping[str, str] | None = None, **spec: Any
    ) -> dict[str, Any]:
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "annotations": {names.TENANT_ANNOTATION: "resilience", **(annotations or {})},
            },
            "spec": {
                "templateID": "cloudkit_templates_ocp_virt_vm",
                "cores": 1,
                "memoryGiB": 1,
                "runStrategy": "Always",
                **spec,
            },
        }
        return await self.kube.create(INSTANCES, body)

    async def delete(self, name: str) -> bool:
        return await self.kube.delete(f"{INSTANCES}/{name}")

    async def deletion(self, name: str) -> dict[str, Any]:
        """Delete and return the API server's answer: the object as the deletion left it
        (deletionTimestamp set, finalizers pending), or a Status when it was removed at once."""
        return await self.kube.request(
            "DELETE", f"{INSTANCES}/{name}", body={"propagationPolicy": "Background"}
        )

    async def get(self, name: str) -> dict[str, Any] | None:
        return await self.kube.get(f"{INSTANCES}/{name}")

    async def vms(self, name: str) -> list[str]:
        """VirtualMachines in any namespace labelled with the instance's name."""
        listed = await self.kube.list_objects(
            VMS, labelSelector=f"{names.VM_INSTANCE_LABEL}={name}"
        )
        return [
            f"{i['metadata']['namespace']}/{i['metadata']['name']}"
            for i in listed.get("items") or []
        ]

    async def events(self) -> list[dict[str, Any]]:
        listed = await self.kube.list_objects(EVENTS)
        return list(listed.get("items") or [])

    # children

    def child(self, name: str) -> Child:
        return next(c for c in self.handle.children if c.name == name)

    async def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send `sig` to the child's process alone and reap it (a crash, not a stop)."""
        child = self.child(name)
        child.stopping = True  # the stack's supervisor must not report it as a failure
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, sig)
        await asyncio.wait_for(child.process.wait(), RESTART_TIMEOUT_S)
        await child.stop()  # closes its log; nothing is left to signal

    async def stop_child(self, name: str) -> None:
        """Stop a child the way the stack does (SIGTERM, grace, then its whole group)."""
        await self.child(name).stop()

    async def respawn(self, name: str, argv: list[str] | None = None) -> Child:
        """Start a stopped child again with its original command, environment and cwd."""
        spec = self.specs[name]
        old = self.child(name)
        new = await spawn(
            name,
            argv or spec.argv,
            env=spec.env,
            log_dir=self.handle.state_dir / "logs",
            sink=None,
            cwd=spec.cwd,
        )
        index = self.handle.children.index(old)
        self.handle.children[index] = new
        return new

    async def restart_operator(self) -> None:
        child = await self.respawn("operator")
        host, port = self.specs["operator"].env["CLOUDKIT_HEALTH_ADDRESS"].rsplit(":", 1)
        await wait_for_port(host, int(port), child, RESTART_TIMEOUT_S)
        child.collecting = False

    def automation_port(self) -> int:
        match = re.search(r":(\d+)/", self.handle.automation_url + "/")
        assert match, self.handle.automation_url
        return int(match.group(1))

    async def restart_automation(self) -> None:
        """The automation service again, on the same state directory and the same port."""
        argv = list(self.specs["automation"].argv)
        port_at = argv.index("--port") + 1
        argv[port_at] = str(self.automation_port())
        child = await self.respawn("automation", argv)
        await child.wait_for_line(lambda line: "automation service:" in line, RESTART_TIMEOUT_S)

    async def simulate_jobs(self, simulate: Mapping[str, Any]) -> None:
        """From now on the job templates are simulated (`simulate`: the automation service's
        settings, as `start_stack(simulated_jobs=...)`): the service restarts on them, on the
        same state directory and port, its notification unchanged. For a test whose later
        steps do not need the playbooks its first steps ran."""
        argv = self.specs["automation"].argv
        templates = Path(argv[argv.index("--templates") + 1])
        await self.stop_child("automation")
        entries = yaml.safe_load(await asyncio.to_thread(templates.read_text))
        write_templates(templates, entries[0].get("notification"), simulate)
        await self.restart_automation()

    def operator_kubeconfig(self) -> Path:
        """The kubeconfig the stack handed its operator (`--kubeconfig` on its command line)."""
        argv = self.specs["operator"].argv
        return Path(argv[argv.index("--kubeconfig") + 1])

    async def assert_operator_service_account(self) -> None:
        """The guard: the operator runs as deploy/operator's ServiceAccount, not as admin."""
        who = await kubeconfig_username(self.operator_kubeconfig())
        assert who == service_account_username(), f"the stack's operator runs as {who!r}"

    # secrets

    def secrets(self) -> dict[str, str]:
        """Every credential of the stack, by where it comes from."""
        found = {
            "automation token": self.handle.automation_token,
            "automation read token": (
                self.handle.state_dir / "automation" / "automation-token-read"
            )
            .read_text()
            .strip(),
            "API server token": self.kube.access.token,
        }
        if "operator" in self.specs:
            token = KubeAccess.from_kubeconfig(self.operator_kubeconfig()).token
            found["operator ServiceAccount token"] = token
        notification = self.specs.get("operator")
        if notification and notification.env.get("CLOUDKIT_NOTIFICATION_TOKEN"):
            found["notification token"] = notification.env["CLOUDKIT_NOTIFICATION_TOKEN"]
        return found


@contextlib.asynccontextmanager
async def open_lab(
    state_dir: Path,
    *,
    vm_boot_seconds: float,
    env: Mapping[str, str] | None = None,
    with_operator: bool = True,
    simulated_jobs: Mapping[str, Any] | None = None,
    with_fulfillment: bool = True,
) -> AsyncIterator[Lab]:
    """A started stack with its clients and a running recorder; everything stopped after.

    `env` reaches the stack's children (the stack copies this process's environment at start).
    `simulated_jobs`: the AAP templates are simulated (the playbooks' effects, no Ansible).
    `with_fulfillment=False` leaves the fulfillment service out, for a test that does not use
    it: it costs a stack start about as much CPU as the API server, automation service and VM
    simulator together.
    """
    saved = {key: os.environ.get(key) for key in env or {}}
    os.environ.update(env or {})
    try:
        handle = await start_stack(
            provider="aap",
            state_dir=state_dir,
            vm_boot_seconds=vm_boot_seconds,
            with_operator=with_operator,
            simulated_jobs=simulated_jobs,
            with_fulfillment=with_fulfillment,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        async with KubeClient.from_kubeconfig(handle.kubeconfig) as kube:
            recorder = Recorder(kube)
            lab = Lab(handle, kube, AutomationJobs(handle), recorder)
            lab.specs = {c.name: ChildSpec.of(c) for c in handle.children}
            if with_operator:
                await lab.assert_operator_service_account()
            await recorder.start()
            try:
                yield lab
            finally:
                await recorder.stop()
    finally:
        await handle.stop()


def phase(obj: Mapping[str, Any] | None) -> str:
    return str(status_of(obj).get("phase") or "")


def describe(obj: Mapping[str, Any] | None) -> str:
    """One line for a failure message: phase and both current jobs."""
    if obj is None:
        return "absent"
    parts = [f"phase={phase(obj) or '-'}"]
    for kind in ("provision", "deprovision"):
        job = job_of(obj, kind)
        if job:
            parts.append(f"{kind}={job.get('id') or '-'}:{job.get('state')}:{job.get('message')!r}")
    finalizers = (obj.get("metadata") or {}).get("finalizers") or []
    parts.append(f"finalizers={finalizers}")
    return " ".join(parts)
