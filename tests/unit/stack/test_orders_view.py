"""`cloudkit up`'s orders view from plain data: each order beside the instance labelled with its
id and that instance's jobs; the console shows them as given."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from cloudkit.api import names
from cloudkit.local.stack.console import StackConsole
from cloudkit.local.stack.orders_view import OrderRow, order_rows


def record(order_id: str, name: str, tenant: str, state: str, **meta: Any) -> dict[str, Any]:
    return {
        "id": order_id,
        "metadata": {"name": name, "tenant": tenant, **meta},
        "status": {"state": f"COMPUTE_INSTANCE_STATE_{state}"},
    }


def instance(name: str, order_id: str, phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {names.INSTANCE_UUID_LABEL: order_id}},
        "status": {"phase": phase, **status},
    }


def test_each_order_beside_its_instance_and_jobs() -> None:
    records = [
        record("a1", "web", "acme", "RUNNING"),
        record("b2", "db", "globex", "STARTING", deletion_timestamp="2026-01-01T00:00:00Z"),
        record("c3", "new", "acme", "UNSPECIFIED"),
    ]
    instances = [
        instance(
            "vm-222",
            "b2",
            "Deleting",
            provisionJob={"id": "7", "state": "Canceled"},
            deprovisionJob={"id": "8", "state": "Running"},
        ),
        instance("vm-111", "a1", "Ready", provisionJob={"id": "5", "state": "Succeeded"}),
        {"metadata": {"name": "by-hand"}, "status": {"phase": "Ready"}},  # no order
    ]
    rows = order_rows(records, instances)
    assert rows == [
        OrderRow("a1", "web", "acme", "RUNNING", "vm-111", "Ready", "#5 Succeeded", "-"),
        OrderRow(
            "b2",
            "db",
            "globex",
            "STARTING (deleted)",
            "vm-222",
            "Deleting",
            "#7 Canceled",
            "#8 Running",
        ),
        OrderRow("c3", "new", "acme", "UNSPECIFIED", "-", "-", "-", "-"),
    ]


def test_the_console_shows_the_rows() -> None:
    out = io.StringIO()
    ui = StackConsole(Console(file=out, width=80, color_system=None))  # a plain terminal
    order_id = "6d0bd227-648d-4364-84c9-ed16d602b712"
    row = OrderRow(order_id, "web", "acme", "DELETING", "vm-dhxtp", "Deleting", "#1 Succeeded",
                   "#2 Running")  # fmt: skip
    ui.orders([row])
    text = out.getvalue()
    shown_whole = ("6d0bd227", "web", "acme", "DELETING", "vm-dhxtp", "Deleting", "#2 Running")
    for shown in (*shown_whole, "#1 Succeeded"):
        assert shown in text  # whole, not cut short on an 80-column terminal
