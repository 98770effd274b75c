"""The EDA activation through real ansible-rulebook: webhook source, rulebook, playbook runs.

Posts ComputeInstance-shaped JSON as the EDA provider does and checks, through the test
playbooks' output files, that the right playbook ran with the resource as
`ansible_eda.event.payload`. The last test stops the activation mid-playbook.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloudkit.local.eda import EdaHandle, EdaStartError, start_eda_activation
from tests.waiting import until

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]

PLAYBOOK_WITHIN_S = 30.0
PLAYBOOKS = Path(__file__).parent / "playbooks"


def instance(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": {"name": name, "namespace": "cloudkit-instances", "uid": f"uid-{name}"},
        "spec": {"templateID": "sample_template", "cores": 1, "memoryGiB": 1, **spec},
        "status": {"desiredConfigVersion": f"version-of-{name}"},
    }


def bearer(activation: EdaHandle) -> dict[str, str]:
    return {"Authorization": f"Bearer {activation.token}"}


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record


async def playbook_record(path: Path, within: float = PLAYBOOK_WITHIN_S) -> dict[str, Any]:
    """What a test playbook wrote (it writes atomically), once it appears."""

    async def read() -> dict[str, Any] | None:
        return _read_record(path)

    record: dict[str, Any] = await until(
        read,
        lambda found: found is not None,
        within=within,
        what=f"{path.name} written",
    )
    return record


def alive(pid: int) -> bool:
    """Running (not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() if alive(pid) else b""
    except OSError:
        return b""


def in_group(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


async def test_health_and_rejected_requests(activation: EdaHandle, eda_out_dir: Path) -> None:
    handle = activation
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{handle.base_url}/healthz") as response:
            assert response.status == 200
        body = b'{"metadata": {"name": '
        headers = {**bearer(activation), "Content-Type": "application/json"}
        async with http.post(handle.provision_url, data=body, headers=headers) as response:
            assert response.status == 400
            assert "JSON" in (await response.json())["error"]
        async with http.post(handle.provision_url, json=[1, 2], headers=bearer(activation)) as r:
            assert r.status == 400
        async with http.post(handle.provision_url, json=instance("no-token")) as response:
            assert response.status == 401
        wrong = {"Authorization": "Bearer wrong"}
        async with http.post(handle.provision_url, json=instance("bad"), headers=wrong) as r:
            assert r.status == 401
        # A token in the URL is refused, even beside a good header (URLs reach logs).
        query = {"token": activation.token}
        async with http.post(handle.provision_url, json=instance("q"), params=query) as r:
            assert r.status == 401
        async with http.post(
            handle.provision_url, json=instance("q"), params=query, headers=bearer(activation)
        ) as r:
            assert r.status == 401
        # The scheme's case does not matter: past auth, the broken body is what is refused.
        lower = {"Authorization": f"bearer {activation.token}"}
        async with http.post(handle.provision_url, data=body, headers=lower) as r:
            assert r.status == 400
        unknown = f"{handle.base_url}/reprovision"
        async with http.post(unknown, json=instance("x"), headers=bearer(activation)) as r:
            assert r.status == 404
    assert handle.provision_url == f"http://127.0.0.1:{handle.port}/provision"
    assert handle.deprovision_url == f"http://127.0.0.1:{handle.port}/deprovision"
    assert "?" not in handle.provision_url  # the token never travels in a printed URL


async def test_provision_post_runs_the_provision_playbook(
    activation: EdaHandle, eda_out_dir: Path
) -> None:
    handle = activation
    async with aiohttp.ClientSession() as http:
        posted = time.time()
        async with http.post(
            handle.provision_url, json=instance("ci-one"), headers=bearer(activation)
        ) as response:
            answered = time.time()
            assert response.status == 200
            assert await response.json() == {"status": "accepted", "endpoint": "provision"}
    record = await playbook_record(eda_out_dir / "provision-ci-one.json")
    seen = time.time()
    assert record["name"] == "ci-one"
    assert record["endpoint"] == "provision"
    assert record["desired"] == "version-of-ci-one"
    assert "authorization" not in {name.lower() for name in record["header_names"]}
    assert "content-type" in {name.lower() for name in record["header_names"]}
    assert not (eda_out_dir / "deprovision-ci-one.json").exists()
    print(
        f"\nPOST answered in {answered - posted:.3f}s; playbook's first task "
        f"{record['started'] - posted:.2f}s after the POST; output seen after "
        f"{seen - posted:.2f}s"
    )


async def test_deprovision_and_provisions_at_once_run_in_parallel(
    activation: EdaHandle, eda_out_dir: Path
) -> None:
    """A deprovision among a burst of provisions: each runs its own playbook, side by side."""
    handle = activation
    names = [f"burst-{n}" for n in range(2)]
    async with aiohttp.ClientSession() as http:

        async def provision(name: str) -> int:
            async with http.post(
                handle.provision_url, json=instance(name), headers=bearer(activation)
            ) as response:
                return response.status

        async def deprovision(name: str) -> int:
            async with http.post(
                handle.deprovision_url, json=instance(name), headers=bearer(activation)
            ) as response:
                return response.status

        posted = time.time()
        statuses = await asyncio.gather(deprovision("ci-two"), *(provision(n) for n in names))
        assert statuses == [200] * (1 + len(names))
    gone = await playbook_record(eda_out_dir / "deprovision-ci-two.json")
    assert gone["name"] == "ci-two"
    assert gone["endpoint"] == "deprovision"
    assert not (eda_out_dir / "provision-ci-two.json").exists()
    records = [await playbook_record(eda_out_dir / f"provision-{n}.json") for n in names]
    done = time.time()
    assert sorted(record["name"] for record in records) == names
    starts = sorted(record["started"] - posted for record in [gone, *records])
    print(
        f"\n{len(starts)} concurrent POSTs: first tasks at "
        + ", ".join(f"{start:.2f}s" for start in starts)
        + f"; all output seen after {done - posted:.2f}s"
    )


async def test_start_failure_reports_ansible_rulebook_output(tmp_path: Path) -> None:
    with pytest.raises(EdaStartError, match="playbook not found"):
        await start_eda_activation(
            tmp_path,
            provision_playbook=tmp_path / "missing.yml",
            deprovision_playbook=PLAYBOOKS / "deprovision.yml",
        )
    # A rule engine that cannot start (no JVM there): fails fast, with the reason in the error.
    with pytest.raises(EdaStartError, match=r"exited with code 1(.|\n)*nonexistent/bin/java"):
        await start_eda_activation(
            tmp_path,
            provision_playbook=PLAYBOOKS / "provision.yml",
            deprovision_playbook=PLAYBOOKS / "deprovision.yml",
            env={"JAVA_HOME": str(tmp_path / "nonexistent")},
        )


async def test_stop_mid_playbook_leaves_nothing_running(
    activation: EdaHandle, eda_out_dir: Path
) -> None:
    """Last in this module: it stops the shared activation (the fixture's stop is a no-op)."""
    handle = activation
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            handle.provision_url,
            json=instance("slow", sleepSeconds=120),
            headers=bearer(activation),
        ) as response,
    ):
        assert response.status == 200
    await playbook_record(eda_out_dir / "provision-slow.json")
    # The playbook's `sleep 120`: started by ansible-playbook, in a session of its own.
    sleep_cmdline = b"sleep\x00120\x00"

    async def sleeps() -> list[int]:
        return [p for p in handle.processes() if cmdline(p) == sleep_cmdline]

    sleeping = await until(
        sleeps, bool, within=PLAYBOOK_WITHIN_S, what="the playbook's sleep started"
    )
    started = handle.processes()
    assert handle.pid in started
    assert any(os.getsid(pid) != os.getsid(handle.pid) for pid in started if alive(pid))

    stopping = time.monotonic()
    await handle.stop()
    print(f"\nstop() with a playbook running took {time.monotonic() - stopping:.2f}s")

    assert not handle.running()
    assert handle.processes() == []
    assert in_group(handle.pid) == []
    assert [pid for pid in [*started, *sleeping] if alive(pid)] == []
    await handle.stop()  # idempotent
