"""The stack's links under planned faults (`cloudkit up --faults SEED`): a fault relay on each
link from one part to another, each following its own plan drawn from the seed, and
DIR/faults.json, which says that faults are on, with which seed, and what each link suffered.

A link is routed by handing its client the relay's URL instead of the server's (`route`); a
part that does not run yet gets its relay the day it is wired, with one `route` call. Plans
start once the stack is ready (`begin`), so a start-up check never meets a fault, and repeat
every `span_s` for as long as the stack runs. Each link's plan is drawn from "SEED/link", so a
link added later leaves the others' plans unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cloudkit.local.private import write_private
from cloudkit.local.stack.faults import Fault, FaultRelay, Mode, fault_plan
from cloudkit.local.stack.ports import HOST

FAULTS_FILE = "faults.json"
PLANNED_MODES = (Mode.REFUSE, Mode.RESET, Mode.BLACK_HOLE, Mode.LOSE_ANSWERS, Mode.SLOW)


class Link(StrEnum):
    """Who calls whom over the network, as the issue that asks for faults names them."""

    OPERATOR_APISERVER = "operator→apiserver"
    OPERATOR_AUTOMATION = "operator→automation"
    OPERATOR_FULFILLMENT = "operator→fulfillment"
    CONTROLLER_FULFILLMENT = "controller→fulfillment"
    CONTROLLER_APISERVER = "controller→apiserver"


@dataclass(frozen=True)
class FaultSettings:
    """`count` faults of at most `longest_s` seconds per link in every `span_s` seconds."""

    seed: int
    span_s: float = 60.0
    count: int = 3
    longest_s: float = 4.0

    def plan(self, link: Link) -> tuple[Fault, ...]:
        return fault_plan(
            f"{self.seed}/{link.value}",
            span_s=self.span_s,
            count=self.count,
            longest_s=self.longest_s,
            modes=PLANNED_MODES,
        )


def relayed_url(url: str, port: int) -> str:
    """`url` with its host and port replaced by the relay's (scheme, path and query kept).
    TLS still verifies: the relay listens on the same loopback address the certificate names."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{HOST}:{port}"))


def target_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"fault relay: the URL {url!r} names no host and port")
    return parts.hostname, parts.port


class FaultedLinks:
    """The relays of one stack, by link; `stop()` ends them and their plans."""

    def __init__(self, settings: FaultSettings) -> None:
        self.settings = settings
        self.relays: dict[Link, FaultRelay] = {}
        self._targets: dict[Link, tuple[str, int]] = {}
        self._plans: list[asyncio.Task[None]] = []

    async def route(self, link: Link, url: str) -> str:
        """A relay for `link` in front of `url`'s server; the URL its client must use. Links
        to the same server share no relay: each follows its own plan."""
        target = target_of(url)
        relay = self.relays.get(link)
        if relay is None:
            relay = FaultRelay(*target)
            await relay.start()
            self.relays[link] = relay
            self._targets[link] = target
        elif self._targets[link] != target:
            raise ValueError(
                f"fault relay: link {link.value} leads to {self._targets[link]}, not {target}"
            )
        return relayed_url(url, relay.port)

    def begin(self) -> None:
        """Every relay follows its plan from now on, again every `span_s`."""
        for link, relay in self.relays.items():
            follow = relay.follow(self.settings.plan(link), every_s=self.settings.span_s)
            self._plans.append(asyncio.create_task(follow, name=f"faults {link.value}"))

    async def calm(self) -> None:
        """No more faults: the plans end and every relay passes (a stopping stack's parts
        then shut down as they would without faults: release their Lease, finish a write)."""
        for task in self._plans:
            task.cancel()
        for task in self._plans:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._plans.clear()
        for relay in self.relays.values():
            await relay.set_mode(Mode.PASS)

    async def stop(self) -> None:
        await self.calm()
        for relay in self.relays.values():
            await relay.stop()

    def summary(self) -> dict[str, Any]:
        """What DIR/faults.json says: the seed, and per link its relay, plan and damage."""
        return {
            "seed": self.settings.seed,
            "span_s": self.settings.span_s,
            "links": {
                link.value: {
                    "relay_port": relay.port,
                    "plan": [
                        {"at_s": f.at_s, "mode": f.mode.value, "for_s": f.for_s}
                        | ({"delay_s": f.delay_s} if f.mode is Mode.SLOW else {})
                        for f in self.settings.plan(link)
                    ],
                    "faults_applied": sum(1 for _, mode in relay.changes if mode is not Mode.PASS),
                    "connections_faulted": relay.faulted,
                }
                for link, relay in self.relays.items()
            },
        }

    def write(self, state_dir: Path) -> None:
        tmp = state_dir / (FAULTS_FILE + ".tmp")
        write_private(tmp, json.dumps(self.summary(), indent=2) + "\n")
        tmp.replace(state_dir / FAULTS_FILE)
