"""The scenario recorder says why its watch broke, and keeps trying: the kubernetes client
against a loopback port where nothing listens (connection refused, no network beyond it). It
follows the instance through the one watch loop (cloudkit.watching), which says it."""

from __future__ import annotations

import logging

import pytest
from kubernetes import client

from cloudkit.local.stack.ports import free_port
from cloudkit.scenarios.runner import Recorder
from tests.waiting import until


async def test_a_broken_watch_is_logged_once_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"
    configuration.retries = False
    api = client.CustomObjectsApi(client.ApiClient(configuration))
    recorder = Recorder(api, "ns", "ci")
    caplog.set_level(logging.DEBUG, logger="cloudkit.watching")
    recorder.start()
    try:

        async def broken() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "cloudkit.watching"]

        records = await until(broken, lambda found: len(found) >= 3, within=60, what="retries")
    finally:
        recorder.stop()
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage().startswith("watch of ns/ci: ")
    assert all(r.levelno == logging.DEBUG for r in records[1:]), "retries log quietly"
