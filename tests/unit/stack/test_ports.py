"""Ports picked for the stack's children come from below the ephemeral range, where outgoing
connections never take them, and are free when picked."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cloudkit.local.stack import ports


def range_file(tmp_path: Path, low: int, high: int = 60999) -> Path:
    path = tmp_path / "ip_local_port_range"
    path.write_text(f"{low}\t{high}\n")
    return path


def test_a_port_is_picked_below_this_machines_ephemeral_range() -> None:
    low = ports.ephemeral_low()
    picked = {ports.free_port() for _ in range(20)}
    assert all(ports.LOWEST <= port < low for port in picked), (low, picked)
    assert len(picked) > 1, "picked at random, so stacks in a row do not share ports"


def test_the_picked_port_can_be_listened_on(tmp_path: Path) -> None:
    port = ports.free_port(range_file=range_file(tmp_path, 40000))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((ports.HOST, port))
        sock.listen()


def test_a_port_someone_listens_on_is_not_bindable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((ports.HOST, 0))
        listener.listen()
        taken = listener.getsockname()[1]
        assert not ports._bindable(ports.HOST, taken)
    assert ports._bindable(ports.HOST, taken)


def test_every_candidate_taken_falls_back_to_the_kernels_pick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ports, "_bindable", lambda host, port: False)
    port = ports.free_port(range_file=range_file(tmp_path, 40000))
    assert port >= 1024


@pytest.mark.parametrize("content", ["", "nonsense", None])
def test_an_unreadable_range_means_linuxs_default(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "range"
    if content is not None:
        path.write_text(content)
    assert ports.ephemeral_low(path) == ports.DEFAULT_EPHEMERAL_LOW


def test_no_room_below_the_range_takes_the_kernels_pick(tmp_path: Path) -> None:
    port = ports.free_port(range_file=range_file(tmp_path, ports.LOWEST + 1, 60999))
    assert port >= 1024
