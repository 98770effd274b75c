"""No credential in any log, status, event or job record, on the happy path and on the failure
paths where messages are most tempted to show a URL.

Secrets: the automation service's tokens, the API server's token, the operator's notification
token (and the wrong one a misconfigured operator is given). One stack, in order:
1. a whole lifecycle, job notifications delivered, through the real playbooks (their job
   records and stdout are searched); from here on the jobs are simulated (the steps below are
   about the operator's and the automation service's messages, not the playbooks');
2. the operator down while the automation service sends notifications (a job launched
   directly): every one is logged as a refused connection;
3. the operator restarted with a wrong notification token: the receiver answers 401 to every
   notification (both sides log it) and a whole lifecycle completes by polling;
4. the automation service down while the operator launches: the status says why; the service
   comes back and the lifecycle completes.
Searched afterwards: every file under <state_dir>/logs/ (every child's output), every Event in
the cluster, every recorded version of every instance, and the automation service's job records
as its API shows them (explanations, tracebacks, extra_vars, stdout). The search is proven able
to find each token first (the API server's in the kubeconfig, the notification token in the
templates file: where they belong), so a clean result means something.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.harness.stack_lab import (
    DEPROVISION_TEMPLATE,
    NAMESPACE,
    Lab,
    describe,
    job_of,
    open_lab,
    phase,
    status_of,
)
from tests.waiting import until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

VM_BOOT_SECONDS = 1.0
SIMULATED_JOBS = {"run_seconds": 0.5}
"""The jobs after the first lifecycle: no Ansible (the playbooks' output is searched once)."""
LIFECYCLE_TIMEOUT_S = 240.0
LOG_TIMEOUT_S = 60.0
# A launch refused during the outage is retried soon, not after the 2 minute default; the
# lifecycle without notifications (wrong token) polls at most every 2 s, not every 30 s.
OPERATOR_ENV = {
    "CLOUDKIT_RETRY_BACKOFF_MIN": "2s",
    "CLOUDKIT_RETRY_BACKOFF_MAX": "10s",
    "CLOUDKIT_AAP_STATUS_POLL_INTERVAL": "2s",
}
WRONG_NOTIFICATION_TOKEN = "wrong-notification-token-0451"
UNREACHABLE = re.compile(
    r"Failed to (get job status|trigger provisioning|look up launched job): "
    r".*(unavailable|refused|connect)",
    re.IGNORECASE,
)


def leaks(text: str, secrets: dict[str, str], where: str) -> list[str]:
    return [f"{what} found in {where}" for what, value in secrets.items() if value in text]


async def run_lifecycle(lab: Lab, name: str) -> None:
    await lab.create(name)
    await complete_lifecycle(lab, name)


async def complete_lifecycle(lab: Lab, name: str) -> None:
    """Until the instance is Ready, then delete it and wait until it is gone."""
    rec = lab.recorder
    try:
        await rec.wait_for(
            lambda: phase(rec.latest(name)) == "Ready", within=LIFECYCLE_TIMEOUT_S, what="Ready"
        )
        await lab.delete(name)
        await rec.wait_for(lambda: name in rec.gone, within=LIFECYCLE_TIMEOUT_S, what="gone")
    except AssertionError as error:
        raise AssertionError(f"{name}: {error}; last {describe(rec.latest(name))}") from None


def matching_line(path: Path, regex: re.Pattern[str]) -> str | None:
    text = path.read_text(errors="replace") if path.exists() else ""
    return next((line for line in text.splitlines() if regex.search(line)), None)


async def wait_logged(path: Path, pattern: str) -> str:
    """Until a line of the log matches `pattern`; that line."""
    regex = re.compile(pattern)

    async def read() -> str | None:
        return matching_line(path, regex)

    found: str | None = await until(
        read,
        lambda line: line is not None,
        within=LOG_TIMEOUT_S,
        what=f"a line matching {pattern!r} in {path.name}",
        interval=0.2,
    )
    assert found is not None
    return found


class AutomationApi:
    """The automation service's AWX API with the write token, as the operator uses it."""

    def __init__(self, lab: Lab, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._base = lab.handle.automation_url.rstrip("/")
        self._origin = re.sub(r"^(https?://[^/]+).*$", r"\1", self._base)

    async def get(self, path: str) -> Any:
        url = path if path.startswith("http") else f"{self._origin}{path}"
        async with self._session.get(url) as response:
            response.raise_for_status()
            if response.content_type == "application/json":
                return await response.json()
            return await response.text()

    async def launch(self, template: str, payload: dict[str, Any]) -> int:
        listed = await self.get(f"{self._base}/v2/job_templates/?name={template}")
        template_id = listed["results"][0]["id"]
        body = {"extra_vars": {"ansible_eda": {"event": {"payload": payload}}}}
        url = f"{self._base}/v2/job_templates/{template_id}/launch/"
        async with self._session.post(url, json=body) as response:
            response.raise_for_status()
            return int((await response.json())["id"])

    async def wait_finished(self, job_id: int) -> dict[str, Any]:
        job: dict[str, Any] = await until(
            lambda: self.get(f"{self._base}/v2/jobs/{job_id}/"),
            lambda job: bool(job.get("finished")),
            within=LIFECYCLE_TIMEOUT_S,
            what=f"job {job_id} finished",
            interval=0.2,
        )
        return job

    async def job_records(self) -> str:
        """Every job as the API shows it, with its stdout: all that people can read."""
        rows: list[Any] = []
        url: str | None = f"{self._base}/v2/jobs/?page_size=200&order_by=id"
        while url:
            page = await self.get(url)
            rows.extend(page["results"])
            url = page.get("next")
        texts = [json.dumps(rows)]
        for row in rows:
            texts.append(await self.get(f"{self._base}/v2/jobs/{row['id']}/stdout/?format=txt"))
        return "\n".join(texts)


async def operator_down_while_notifying(lab: Lab, api: AutomationApi, port: int) -> str:
    await lab.kill("operator")
    nobody = {
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": {"name": "nobody-home", "namespace": NAMESPACE},
    }
    job = await api.wait_finished(await api.launch(DEPROVISION_TEMPLATE, nobody))
    assert job["status"] == "successful", job.get("job_explanation")
    return await wait_logged(
        lab.handle.state_dir / "logs" / "automation.log",
        rf"notification to http://127\.0\.0\.1:{port}/\S* failed: ClientConnectorError",
    )


async def receiver_refusing(lab: Lab, port: int) -> tuple[str, str]:
    spec = lab.specs["operator"]
    wrong = {**spec.env, "CLOUDKIT_NOTIFICATION_TOKEN": WRONG_NOTIFICATION_TOKEN}
    lab.specs["operator"] = dataclasses.replace(spec, env=wrong)
    await lab.restart_operator()
    await run_lifecycle(lab, "wrong-token")  # by polling alone
    logs = lab.handle.state_dir / "logs"
    sent = await wait_logged(
        logs / "automation.log", rf"notification to http://127\.0\.0\.1:{port}/\S* answered 401"
    )
    refused = await wait_logged(logs / "operator.log", r"job notification refused \(401\)")
    return sent, refused


async def automation_down_while_launching(lab: Lab, name: str) -> str:
    rec = lab.recorder
    await lab.stop_child("automation")

    def says_why() -> str | None:
        obj = rec.latest(name)
        messages = [str(job_of(obj, "provision").get("message") or "")]
        messages += [str(e.get("message") or "") for e in status_of(obj).get("jobs") or []]
        return next((m for m in messages if UNREACHABLE.search(m)), None)

    await lab.create(name)
    try:
        await rec.wait_for(
            lambda: says_why() is not None,
            within=LIFECYCLE_TIMEOUT_S,
            what="the status to say the automation service is unreachable",
        )
    except AssertionError as error:
        raise AssertionError(f"{error}; last {describe(rec.latest(name))}") from None
    why = says_why() or ""
    await lab.restart_automation()
    await complete_lifecycle(lab, name)
    return why


async def test_no_token_in_logs_status_events_or_jobs(tmp_path: Path) -> None:
    async with open_lab(
        tmp_path / "stack", vm_boot_seconds=VM_BOOT_SECONDS, env=OPERATOR_ENV
    ) as lab:
        secrets = lab.secrets()
        assert "notification token" in secrets, "the stack runs without job notifications"
        secrets["wrong notification token"] = WRONG_NOTIFICATION_TOKEN
        assert all(len(value) >= 16 for value in secrets.values()), "a credential is missing"
        # The search can find each token where it is supposed to be.
        assert leaks(lab.handle.kubeconfig.read_text(), secrets, "kubeconfig")
        templates = lab.handle.state_dir / "automation" / "templates.yml"
        assert leaks(templates.read_text(), secrets, "templates") == [
            "notification token found in templates"
        ]
        port = int(lab.handle.notification_url.rsplit(":", 1)[1].split("/", 1)[0])

        started = time.monotonic()
        await run_lifecycle(lab, "secret-keeper")
        timed = {"lifecycle": time.monotonic() - started}
        await lab.simulate_jobs(SIMULATED_JOBS)
        # The stack's notifications carry the token as the receiver wants it (header).
        logs = lab.handle.state_dir / "logs"
        undelivered = re.compile(r"notification to \S+ (answered|failed)")
        assert matching_line(logs / "automation.log", undelivered) is None
        assert matching_line(logs / "operator.log", re.compile("notification refused")) is None
        headers = {"Authorization": f"Bearer {lab.handle.automation_token}"}
        async with aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=30)
        ) as session:
            api = AutomationApi(lab, session)
            started = time.monotonic()
            refused = await operator_down_while_notifying(lab, api, port)
            # Checked at once: the line that names the unreachable receiver shows no token.
            leaked = leaks(refused, secrets, "the refused-connection line")
            assert not leaked, leaked  # (named, not shown: the message must not print tokens)
            timed["operator down"] = time.monotonic() - started
            started = time.monotonic()
            sent, received = await receiver_refusing(lab, port)
            leaked = leaks(f"{sent}\n{received}", secrets, "the 401 lines")
            assert not leaked, leaked
            timed["wrong token"] = time.monotonic() - started
            started = time.monotonic()
            why = await automation_down_while_launching(lab, "outage")
            timed["automation down"] = time.monotonic() - started
            job_records = await api.job_records()
        print("\n" + ", ".join(f"{what} {seconds:.1f}s" for what, seconds in timed.items()))
        print(f"logged: {refused!r}\n{sent!r}\n{received!r}\nstatus while down: {why!r}")

        found = leaks(why, secrets, "the status message while the automation service was down")
        found += leaks(job_records, secrets, "the automation job records")
        for event in await lab.events():
            found += leaks(json.dumps(event), secrets, f"event {event['metadata']['name']}")
        assert set(lab.recorder.versions) >= {"secret-keeper", "wrong-token", "outage"}
        for name, versions in lab.recorder.versions.items():
            for obj in versions:
                rv = obj["metadata"]["resourceVersion"]
                found += leaks(json.dumps(obj), secrets, f"{name} at rv {rv}")
        logs_dir = lab.handle.state_dir / "logs"
        # Logs are read while the stack still runs and again after it stopped (final lines).
    log_files = sorted(p for p in logs_dir.rglob("*") if p.is_file())
    assert {p.name for p in log_files} >= {"apiserver.log", "automation.log", "operator.log"}
    for path in log_files:
        found += leaks(path.read_text(errors="replace"), secrets, f"log {path.name}")
    assert not found, "\n".join(found)
