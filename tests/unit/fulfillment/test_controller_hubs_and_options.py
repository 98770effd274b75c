"""Which kubeconfig a hub may use (a name in the controller's directory, never a path from a
record), and the controller's options, each wrong one named."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudkit.fulfillment.controller.decision import Refused
from cloudkit.fulfillment.controller.hubs import HubKubeconfigs
from cloudkit.fulfillment.controller.options import OptionError, controller_options


def hub(ref: str, id: str = "h1", created: str = "2026-12-07T00:00:00Z") -> dict[str, object]:
    return {
        "id": id,
        "metadata": {"creation_timestamp": created},
        "spec": {"kubeconfig_ref": ref, "namespace": "tenants"},
    }


@pytest.fixture
def kubeconfigs(tmp_path: Path) -> HubKubeconfigs:
    directory = tmp_path / "hubs"
    directory.mkdir()
    (directory / "east").write_text("kubeconfig")
    (tmp_path / "outside").write_text("kubeconfig")
    return HubKubeconfigs(directory)


def test_a_hub_names_a_kubeconfig_of_the_directory(kubeconfigs: HubKubeconfigs) -> None:
    found = kubeconfigs.hub(hub("east"))
    assert found.kubeconfig == kubeconfigs.directory / "east"
    assert found.namespace == "tenants" and found.id == "h1"


@pytest.mark.parametrize(
    "ref", ["../outside", "/etc/passwd", "sub/east", ".hidden", "..", "", "missing"]
)
def test_anything_but_a_known_name_is_refused_naming_the_hub(
    kubeconfigs: HubKubeconfigs, ref: str
) -> None:
    with pytest.raises(Refused, match="hub h1: kubeconfig_ref"):
        kubeconfigs.hub(hub(ref))


def test_placement_candidates_are_the_usable_live_hubs_oldest_first(
    kubeconfigs: HubKubeconfigs,
) -> None:
    gone = hub("east", "h0", "2026-01-01T00:00:00Z")
    gone["metadata"] = {"creation_timestamp": "2026-01-01T00:00:00Z", "deletion_timestamp": "x"}
    hubs = [hub("east", "new", "2026-12-08T00:00:00Z"), hub("nope", "old", "2026-01-02T00:00:00Z")]
    hubs += [hub("east", "older", "2026-12-01T00:00:00Z"), gone]
    assert [h.id for h in kubeconfigs.usable(hubs)] == ["older", "new"]


def options(tmp_path: Path, **changes: object) -> dict[str, object]:
    (tmp_path / "token").write_text("t")
    (tmp_path / "hubs").mkdir(exist_ok=True)
    given: dict[str, object] = {
        "address": "https://127.0.0.1:8443",
        "ca_file": None,
        "token_file": tmp_path / "token",
        "hub_kubeconfigs": tmp_path / "hubs",
        "kubeconfig": None,
        "leader_election": True,
        "lease_name": "cloudkit-fulfillment-controller-leader",
        "lease_namespace": "cloudkit-system",
        "identity": None,
        "resync_s": 600.0,
        "rewatch_s": 2.0,
        "workers": 4,
        "environ": {},
    }
    given.update(changes)
    return given


def test_good_options_are_taken(tmp_path: Path) -> None:
    taken = controller_options(**options(tmp_path))  # type: ignore[arg-type]
    assert taken.election.namespace == "cloudkit-system"
    assert taken.election.identity  # <host>_<pid> outside a cluster


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"address": "127.0.0.1:8443"}, "--address"),
        ({"token_file": Path("/nonexistent/token")}, "--token-file"),
        ({"ca_file": Path("/nonexistent/ca.pem")}, "--ca-file"),
        ({"hub_kubeconfigs": None}, "--hub-kubeconfigs"),
        ({"kubeconfig": Path("/nonexistent/kubeconfig")}, "--kubeconfig"),
        ({"resync_s": 0.0}, "--resync-seconds"),
        ({"rewatch_s": -1.0}, "--rewatch-seconds"),
        ({"recheck_s": 0.0}, "--recheck-seconds"),
        ({"stream_lifetime_s": 0.0}, "--stream-lifetime-seconds"),
        ({"workers": 0}, "--workers"),
        ({"lease_name": "Not_A_Name"}, "--lease-name"),
    ],
)
def test_a_wrong_option_is_named(tmp_path: Path, change: dict[str, object], named: str) -> None:
    with pytest.raises(OptionError, match=f"^{named}:"):
        controller_options(**options(tmp_path, **change))  # type: ignore[arg-type]
