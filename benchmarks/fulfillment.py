"""Fulfillment service benchmark: prints one JSON document of figures, per database.

For each of SQLite and PostgreSQL (a durable throwaway server: PostgreSQL's defaults), against
the real `cloudkit fulfillment` process over HTTPS with the local issuer's tokens:
- `creates_per_s`: POST /compute_instances from CLIENTS concurrent tenants' clients;
- `bare_inserts_per_s`: the same database's rate of single-row INSERT + COMMIT of the same
  rows through the same driver (sqlite3 with the store's pragmas; psycopg), one after another:
  what one durable write costs there. `creates_ratio` is the first over the second (above 1
  when the store's group commit shares one fsync between concurrent creates);
- `list_p99_ms`: a tenant's GET of a page of 100 (the tenant filter is its scope) with 10,000
  records of 20 tenants in the database, LIST_SAMPLES requests; `list_cel_p99_ms` the same with
  a CEL `filter` that every record passes (the Python side of a filter at its most expensive);
- `event_p99_ms`: commit → client, for EVENT_SAMPLES creates one after another while the
  tenant follows /api/events/v1/events: the client's clock at the line's arrival minus the
  record's `creation_timestamp` (taken just before its commit: a slight overestimate).

    .venv/bin/python benchmarks/fulfillment.py [--records 10000] [--creates 1000]

With `--store-list`, only the store tier's list on SQLite (no HTTP, no PostgreSQL): the CPU
time of this process per page of 100 of tenant-07, p50 and p99 of LIST_SAMPLES calls (CPU
time, so that a loaded machine's waiting for a core does not blur it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

# The harnesses the tests start these processes with (one way to run them, not two).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness.fulfillment import EVENTS, PUBLIC, FulfillmentService, Issuer
from tests.harness.postgresql import start_postgresql

from cloudkit.fulfillment.store import open_store
from cloudkit.fulfillment.store.base import Scope
from cloudkit.fulfillment.store.records import creation, utc_now

TENANTS = 20
CLIENTS = 16
LIST_SAMPLES = 200
EVENT_SAMPLES = 200


def instance(name: str, tenant: str = "") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "tenant": tenant, "creator": f"{tenant}-user"},
        "spec": {
            "template": "small",
            "template_parameters": {"cpu": "2", "memory": "4Gi"},
            "image": {"source_type": "registry", "source_ref": "quay.io/containerdisks/fedora"},
            "run_strategy": "Always",
        },
    }


def p99(samples: list[float]) -> float:
    return round(statistics.quantiles(samples, n=100)[98], 2)


# --- bare inserts ----------------------------------------------------------------------------


def sqlite_bare_inserts(directory: Path, count: int) -> float:
    from cloudkit.fulfillment.store.sqlite import _connect, _insert

    db = _connect(directory / "bare.db")  # the store's own pragmas (WAL, synchronous=FULL)
    from cloudkit.fulfillment.store.migrations import migrate_sqlite

    migrate_sqlite(db)
    rows = [creation(instance(f"vm-{i}", "bare"), now=utc_now()).row for i in range(count)]
    started = time.perf_counter()
    for row in rows:
        db.execute("BEGIN IMMEDIATE")
        _insert(db, "compute_instances", row)
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return count / elapsed


async def postgresql_bare_inserts(url: str, count: int) -> float:
    from cloudkit.fulfillment.store.postgresql import _insert

    await (await open_store(url)).close()  # the schema, migrated
    rows = [creation(instance(f"vm-{i}", "bare"), now=utc_now()).row for i in range(count)]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        started = time.perf_counter()
        for row in rows:
            async with db.transaction():
                await _insert(db, "compute_instances", row)
        elapsed = time.perf_counter() - started
        await db.execute("DELETE FROM compute_instances WHERE tenant = 'bare'")
    return count / elapsed


# --- through the service ---------------------------------------------------------------------


async def populate(url: str, records: int) -> None:
    """RECORDS records of TENANTS tenants, written through the store (the API's cost is
    measured by the creates, not paid again for the fixture)."""
    store = await open_store(url)
    try:
        for start in range(0, records, 500):
            await asyncio.gather(
                *(
                    store.create(
                        "compute_instances", instance(f"vm-{i}", f"tenant-{i % TENANTS:02d}")
                    )
                    for i in range(start, min(start + 500, records))
                )
            )
    finally:
        await store.close()


async def creates_per_s(service: FulfillmentService, count: int) -> float:
    clients = [service.tenant("creates") for _ in range(CLIENTS)]
    body = {"metadata": {"name": "vm"}, "spec": instance("vm")["spec"]}
    try:
        for tenant in clients:  # connections and tokens warm before the clock starts
            await tenant.call("GET", PUBLIC, params={"limit": "1"})

        async def create_many(tenant: Any, n: int) -> None:
            for _ in range(n):
                status, answer = await tenant.call("POST", PUBLIC, json=body)
                assert status == 200, answer

        started = time.perf_counter()
        await asyncio.gather(*(create_many(t, count // CLIENTS) for t in clients))
        return (count // CLIENTS) * CLIENTS / (time.perf_counter() - started)
    finally:
        for tenant in clients:
            await tenant.close()


async def list_p99_ms(service: FulfillmentService, cel: bool) -> float:
    from tests.harness.fulfillment import Tenant

    name = "tenant-07"
    tenant = Tenant(name, service.session(service.token(name, user=f"{name}-user")))
    params = {"limit": "100"}
    if cel:
        params["filter"] = 'this.metadata.name.startsWith("vm")'
    try:
        status, page = await tenant.call("GET", PUBLIC, params=params)
        assert status == 200 and len(page["items"]) == 100, (status, page.get("total"))
        samples = []
        for _ in range(LIST_SAMPLES):
            started = time.perf_counter()
            status, page = await tenant.call("GET", PUBLIC, params=params)
            samples.append((time.perf_counter() - started) * 1000)
            assert status == 200 and len(page["items"]) == 100
        return p99(samples)
    finally:
        await tenant.close()


async def event_p99_ms(service: FulfillmentService) -> float:
    tenant = service.tenant("events")
    body = {"metadata": {"name": "vm"}, "spec": instance("vm")["spec"]}
    samples: list[float] = []
    try:
        async with tenant.http.get(EVENTS, timeout=None) as stream:
            for _ in range(EVENT_SAMPLES):
                status, created = await tenant.call("POST", PUBLIC, json=body)
                assert status == 200, created
                while True:
                    line = await asyncio.wait_for(stream.content.readline(), 30)
                    arrived = time.time()
                    event = json.loads(line)
                    obj = event.get("object") or event.get("compute_instance") or {}
                    if obj.get("id") == created["id"]:
                        break
                committed = datetime.fromisoformat(created["metadata"]["creation_timestamp"])
                samples.append((arrived - committed.timestamp()) * 1000)
        return p99(samples)
    finally:
        await tenant.close()


async def store_list_cpu_ms(url: str) -> dict[str, float]:
    store = await open_store(url)
    scope = Scope(frozenset({"tenant-07"}))
    try:
        samples = []
        for _ in range(LIST_SAMPLES):
            started = time.process_time()
            page = await store.list("compute_instances", scope=scope, limit=100)
            samples.append((time.process_time() - started) * 1000)
            assert len(page.items) == 100
    finally:
        await store.close()
    quantiles = statistics.quantiles(samples, n=100)
    return {"p50": round(quantiles[49], 2), "p99": round(quantiles[98], 2)}


async def measure(database: str, url: str, directory: Path, args: argparse.Namespace) -> Any:
    if database == "sqlite":
        bare = sqlite_bare_inserts(directory, args.bare)
    else:
        bare = await postgresql_bare_inserts(url, args.bare)
    await populate(url, args.records)
    issuer = Issuer(directory / "issuer")
    await issuer.start()
    service = FulfillmentService(directory / "service", issuer, database=url)
    try:
        await service.start()
        lists = await list_p99_ms(service, cel=False)
        lists_cel = await list_p99_ms(service, cel=True)
        events = await event_p99_ms(service)
        creates = await creates_per_s(service, args.creates)
    finally:
        service.stop()
        issuer.stop()
    return {
        "creates_per_s": round(creates, 1),
        "bare_inserts_per_s": round(bare, 1),
        "creates_ratio": round(creates / bare, 3),
        "list_p99_ms": lists,
        "list_cel_p99_ms": lists_cel,
        "event_p99_ms": events,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--creates", type=int, default=1_600)
    parser.add_argument("--bare", type=int, default=500)
    parser.add_argument("--store-list", action="store_true", help="the store tier's list only")
    args = parser.parse_args()
    if args.store_list:
        with tempfile.TemporaryDirectory(prefix="cloudkit-bench-fulfillment-") as temp:
            url = f"sqlite:///{Path(temp) / 'fulfillment.db'}"
            await populate(url, args.records)
            cpu = await store_list_cpu_ms(url)
        print(json.dumps({"records": args.records, "store_list_cpu_ms": cpu}, indent=2))
        return
    figures: dict[str, Any] = {
        "records": args.records,
        "tenants": TENANTS,
        "clients": CLIENTS,
        "list_samples": LIST_SAMPLES,
        "event_samples": EVENT_SAMPLES,
    }
    with tempfile.TemporaryDirectory(prefix="cloudkit-bench-fulfillment-") as temp:
        root = Path(temp)
        (root / "sqlite").mkdir()
        sqlite_url = f"sqlite:///{root / 'sqlite' / 'fulfillment.db'}"
        figures["sqlite"] = await measure("sqlite", sqlite_url, root / "sqlite", args)
        server = start_postgresql(durable=True)
        try:
            (root / "postgresql").mkdir()
            url = server.create_database("bench")
            figures["postgresql"] = await measure("postgresql", url, root / "postgresql", args)
        finally:
            server.stop()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
