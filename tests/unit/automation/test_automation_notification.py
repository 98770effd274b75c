"""A template's notification entry (AWX's webhook notification_configuration) and the URL
form logs may show: credentials in headers, nothing secret in messages, repr or logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudkit.local.automation.notify import redacted_url
from cloudkit.local.automation.planning import (
    TemplateError,
    TemplateSpec,
    WebhookNotification,
    parse_templates,
)

SECRET = "n0tify-secret-55"


def template(**fields: Any) -> dict[str, Any]:
    return {"name": "t", "playbook": "site.yml", **fields}


def test_notification_entry_with_headers() -> None:
    entry = template(
        notification={
            "notification_type": "webhook",
            "url": "https://receiver.example/hook",
            "headers": {"X-Api-Key": SECRET, "X-Tenant": "t1"},
            "http_method": "put",
            "username": "awx",
            "password": SECRET,
            "disable_ssl_verification": True,
        }
    )
    [spec] = parse_templates([entry], Path("/p"))
    assert spec.notification == WebhookNotification(
        url="https://receiver.example/hook",
        headers=(("X-Api-Key", SECRET), ("X-Tenant", "t1")),
        http_method="PUT",
        username="awx",
        password=SECRET,
        disable_ssl_verification=True,
    )
    # Stored as JSON in the service's database and read back for every notification.
    assert TemplateSpec.from_json(spec.to_json()) == spec
    assert SECRET not in repr(spec) and "receiver.example" not in repr(spec)


def test_no_notification_entry() -> None:
    [spec] = parse_templates([template()], Path("/p"))
    assert spec.notification is None
    assert TemplateSpec.from_json(spec.to_json()).notification is None


def test_url_only_entry_defaults_to_post_without_headers() -> None:
    [spec] = parse_templates([template(notification={"url": "http://r/h"})], Path("/p"))
    assert spec.notification == WebhookNotification(url="http://r/h")
    assert spec.notification.http_method == "POST" and spec.notification.headers == ()


def test_notification_url_is_refused_not_ignored() -> None:
    url = f"http://receiver/hook?token={SECRET}"
    with pytest.raises(TemplateError) as refused:
        parse_templates([template(notification_url=url)], Path("/p"))
    assert "notification_url" in str(refused.value) and "headers" in str(refused.value)
    assert SECRET not in str(refused.value)


def test_stale_stored_notification_url_is_dropped() -> None:
    """A database row written before the change still loads, without its token-bearing URL."""
    stored = {"name": "t", "kind": "job_template", "notification_url": f"http://r/?token={SECRET}"}
    spec = TemplateSpec.from_json(stored)
    assert spec.notification is None and SECRET not in repr(spec)


@pytest.mark.parametrize(
    ("notification", "words"),
    [
        ({"url": f"ftp://r/{SECRET}"}, "url must be"),
        ({"url": f"https://awx:{SECRET}@r/hook"}, "user info"),
        ({"url": f"http://{SECRET}@r"}, "user info"),
        ({"headers": {"A": "b"}}, "url must be"),
        ({"url": "http://r/", "http_method": "GET"}, "http_method"),
        ({"url": "http://r/", "headers": {"Authorization": 42}}, "headers must be"),
        ({"url": "http://r/", "headers": ["Authorization"]}, "headers must be"),
        ({"url": "http://r/", "headers": {"X-A": f"{SECRET}\r\nX-B: 1"}}, "line break"),
        ({"url": "http://r/", "header": {"Authorization": SECRET}}, "unknown keys ['header']"),
        ({"url": "http://r/", "notification_type": "email"}, "webhook"),
        ({"url": "http://r/", "password": 7}, "strings"),
        (
            {"url": "http://r/", "username": "u", "headers": {"authorization": f"Bearer {SECRET}"}},
            "not both",
        ),
        (f"http://r/?token={SECRET}", "must be a mapping"),
    ],
)
def test_bad_notification_entries_are_named_without_secrets(notification: Any, words: str) -> None:
    with pytest.raises(TemplateError) as refused:
        parse_templates([template(notification=notification)], Path("/p"))
    message = str(refused.value)
    assert "template 't': notification" in message and words in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8080/notifications", "http://127.0.0.1:8080/notifications"),
        (f"http://127.0.0.1:8080/n?token={SECRET}", "http://127.0.0.1:8080/n"),
        (f"https://awx:{SECRET}@hooks.example/n#frag", "https://hooks.example/n"),
        (f"https://{SECRET}@hooks.example", "https://hooks.example"),
        (f"http://[::1]:9/x?a=1&token={SECRET}", "http://[::1]:9/x"),
        ("http://[::1/x", "<unparsable URL>"),
    ],
)
def test_redacted_url_keeps_only_scheme_host_port_and_path(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
