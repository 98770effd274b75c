"""The one Event shape both the operator and the local stack write about an instance."""

from __future__ import annotations

from cloudkit.api.events import MAX_MESSAGE, instance_event


def test_an_instance_event_names_its_object_and_is_unique() -> None:
    metadata = {"name": "vm1", "namespace": "ns", "uid": "u-1", "resourceVersion": "7"}
    first = instance_event(
        metadata, reason="Restarted", message="x" * 5000, type_="Normal", component="cloudkit"
    )
    second = instance_event(
        metadata, reason="Restarted", message="y", type_="Normal", component="cloudkit"
    )
    assert first["involvedObject"] == {
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "name": "vm1",
        "namespace": "ns",
        "uid": "u-1",
        "resourceVersion": "7",
    }
    assert first["metadata"]["namespace"] == "ns"
    assert first["metadata"]["name"].startswith("vm1.")
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert len(first["message"]) == MAX_MESSAGE
    assert (first["type"], first["count"], first["reason"]) == ("Normal", 1, "Restarted")
    assert first["firstTimestamp"] == first["lastTimestamp"]
    assert first["firstTimestamp"].endswith("Z")
    assert "reportingInstance" not in first
    without_version = instance_event(
        {"name": "a", "namespace": "b"}, reason="R", message="m", type_="Warning", component="c"
    )
    assert "resourceVersion" not in without_version["involvedObject"]
