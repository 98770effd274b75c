"""Ports for the local stack's children to listen on, picked before they start.

The stack must know some ports before their owner runs (the operator's notification URL goes
into the automation service's job templates first), so it picks them and the child binds them
later. A port from `bind(0)` is a poor pick for that: the kernel hands it out of its ephemeral
range, the same range every outgoing connection on the machine takes its local port from, and
in the seconds before the child starts one did take an operator's metrics port. Below the
ephemeral range only listeners compete, and one already listening is skipped here.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

HOST = "127.0.0.1"
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_LOW = 32768
"""Linux's default start of the range (macOS starts at 49152, above it)."""
LOWEST = 10000
"""Below this, well-known services' ports crowd the space."""
ATTEMPTS = 64


def ephemeral_low(range_file: Path = EPHEMERAL_RANGE_FILE) -> int:
    """The first port of the kernel's ephemeral range."""
    try:
        return int(range_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_LOW


def free_port(host: str = HOST, *, range_file: Path = EPHEMERAL_RANGE_FILE) -> int:
    """A port nothing listens on now, below the ephemeral range when there is room there
    (at random, so stacks started one after another do not reuse each other's ports)."""
    low = ephemeral_low(range_file)
    if low - LOWEST >= ATTEMPTS:
        for port in random.sample(range(LOWEST, low), ATTEMPTS):
            if _bindable(host, port):
                return port
    # No room below the range, or it is all taken: the kernel's pick is the best left.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
