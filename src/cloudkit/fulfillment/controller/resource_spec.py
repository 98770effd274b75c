"""A record's ComputeInstance, pure: the body to create, the merge patch of its mutable spec, and
the user data Secret, all from the record (upstream's mapping, our CRD's field names).

The record's fields reach the resource as data only: copied into JSON fields, never templated.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cloudkit.api import names

Object = dict[str, Any]

RESOURCE_NAME_PREFIX = "vm-"
USER_DATA_SUFFIX = "-user-data"
USER_DATA_KEY = "userdata"
"""The key of the Secret our CRD's `userDataSecretRef` names (api.models.SecretReference)."""


def user_data_secret_name(record_id: str) -> str:
    return f"{record_id}{USER_DATA_SUFFIX}"


def _disk(disk: Object) -> Object:
    return {"sizeGiB": disk.get("size_gib")}


def resource_spec(record: Object) -> Object:
    """The ComputeInstance spec a record asks for (fields the record leaves unset stay unset)."""
    spec = record.get("spec") or {}
    mapped: Object = {"templateID": spec.get("template")}
    parameters = spec.get("template_parameters")
    if parameters:
        # Our CRD keeps parameters as one JSON-encoded string; sorted, so equal maps are equal text.
        mapped["templateParameters"] = json.dumps(parameters, sort_keys=True)
    image = spec.get("image")
    if image:
        mapped["image"] = {
            "sourceType": image.get("source_type"),
            "sourceRef": image.get("source_ref"),
        }
    if spec.get("boot_disk"):
        mapped["bootDisk"] = _disk(spec["boot_disk"])
    if spec.get("additional_disks"):
        mapped["additionalDisks"] = [_disk(d) for d in spec["additional_disks"]]
    if spec.get("ssh_public_key"):
        mapped["sshKey"] = spec["ssh_public_key"]
    if spec.get("user_data"):
        mapped["userDataSecretRef"] = {"name": user_data_secret_name(str(record["id"]))}
    mapped.update(mutable_spec(record))
    return {k: v for k, v in mapped.items() if v is not None}


def mutable_spec(record: Object) -> Object:
    """The spec fields a record may change after creation, as the resource spells them (None:
    unset, which a merge patch turns into a removal)."""
    spec = record.get("spec") or {}
    return {
        "runStrategy": spec.get("run_strategy"),
        "restartRequestedAt": _timestamp(spec.get("restart_requested_at")),
    }


def resource_body(record: Object, namespace: str) -> Object:
    """The ComputeInstance to create for a record: generated name, the uuid label, the tenant."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {
            "generateName": RESOURCE_NAME_PREFIX,
            "namespace": namespace,
            "labels": {names.INSTANCE_UUID_LABEL: str(record["id"])},
            "annotations": {names.TENANT_ANNOTATION: str(record["metadata"]["tenant"])},
        },
        "spec": resource_spec(record),
    }


def spec_patch(record: Object, resource: Object) -> Object | None:
    """The merge patch that brings the resource's mutable spec to the record's; None if equal."""
    current = resource.get("spec") or {}
    patch = {
        field: wanted
        for field, wanted in mutable_spec(record).items()
        if _same_value(field, wanted) != _same_value(field, current.get(field))
    }
    return {"spec": patch} if patch else None


def user_data_secret(record: Object, resource: Object) -> Object | None:
    """The Secret holding the record's user data, owned by the resource (garbage-collected with
    it); None when the record has no user data."""
    user_data = (record.get("spec") or {}).get("user_data")
    if not user_data:
        return None
    metadata = resource["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": user_data_secret_name(str(record["id"])),
            "namespace": metadata["namespace"],
            "labels": {names.INSTANCE_UUID_LABEL: str(record["id"])},
            "ownerReferences": [
                {
                    "apiVersion": names.API_VERSION,
                    "kind": names.KIND,
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "type": "Opaque",
        "stringData": {USER_DATA_KEY: user_data},
    }


def _timestamp(value: Any) -> str | None:
    """An RFC 3339 UTC timestamp ending in `Z` (fractions kept when there are); None stays None."""
    parsed = _parse_time(value)
    return None if parsed is None else parsed.isoformat().replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _same_value(field: str, value: Any) -> Any:
    # The server may render a time with or without fractions: compare instants, not text.
    return _timestamp(value) if field == "restartRequestedAt" else value
