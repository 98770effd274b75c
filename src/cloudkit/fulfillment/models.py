"""The fulfillment API's wire objects (pydantic v2, pure): what the server validates and shows.

Field names are upstream's proto field names in snake_case; enum values are spelled as proto
JSON renders them (`COMPUTE_INSTANCE_STATE_RUNNING`, `CONDITION_STATUS_TRUE`,
`EVENT_TYPE_OBJECT_CREATED`). Every model refuses unknown fields and wrong types, so a typo in
a request is a 422 naming the field, never a silently dropped value.

Public and private views differ only by what the private API adds (`metadata.finalizers`,
`status.hub`); the store keeps one object, and `public_view` trims it for tenants.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# RFC 1123 label, as Kubernetes names: the controller turns records into resources.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)]

# The fields a record keeps from its creation on; an update that changes one is refused.
IMMUTABLE_SPEC_FIELDS = (
    "template",
    "template_parameters",
    "image",
    "boot_disk",
    "additional_disks",
)


class ComputeInstanceState(StrEnum):
    UNSPECIFIED = "COMPUTE_INSTANCE_STATE_UNSPECIFIED"
    STARTING = "COMPUTE_INSTANCE_STATE_STARTING"
    RUNNING = "COMPUTE_INSTANCE_STATE_RUNNING"
    FAILED = "COMPUTE_INSTANCE_STATE_FAILED"
    DELETING = "COMPUTE_INSTANCE_STATE_DELETING"
    STOPPING = "COMPUTE_INSTANCE_STATE_STOPPING"
    STOPPED = "COMPUTE_INSTANCE_STATE_STOPPED"
    PAUSED = "COMPUTE_INSTANCE_STATE_PAUSED"


class ComputeInstanceConditionType(StrEnum):
    UNSPECIFIED = "COMPUTE_INSTANCE_CONDITION_TYPE_UNSPECIFIED"
    CONFIGURATION_APPLIED = "COMPUTE_INSTANCE_CONDITION_TYPE_CONFIGURATION_APPLIED"
    READY = "COMPUTE_INSTANCE_CONDITION_TYPE_READY"
    RESTART_IN_PROGRESS = "COMPUTE_INSTANCE_CONDITION_TYPE_RESTART_IN_PROGRESS"
    RESTART_FAILED = "COMPUTE_INSTANCE_CONDITION_TYPE_RESTART_FAILED"
    PROVISIONED = "COMPUTE_INSTANCE_CONDITION_TYPE_PROVISIONED"
    RESTART_REQUIRED = "COMPUTE_INSTANCE_CONDITION_TYPE_RESTART_REQUIRED"


class ConditionStatus(StrEnum):
    UNSPECIFIED = "CONDITION_STATUS_UNSPECIFIED"
    TRUE = "CONDITION_STATUS_TRUE"
    FALSE = "CONDITION_STATUS_FALSE"


class EventType(StrEnum):
    """The stream's event types; the store's short names (CREATED…) map to these by `wire`."""

    CREATED = "EVENT_TYPE_OBJECT_CREATED"
    UPDATED = "EVENT_TYPE_OBJECT_UPDATED"
    DELETED = "EVENT_TYPE_OBJECT_DELETED"
    SIGNALED = "EVENT_TYPE_OBJECT_SIGNALED"

    @classmethod
    def wire(cls, short: str) -> EventType:
        return cls[short]


class Strict(BaseModel):
    """Unknown fields are errors: a misspelt field must not vanish silently."""

    model_config = ConfigDict(extra="forbid")


class Metadata(Strict):
    """Who owns a record and how to find it; the server owns every field but name, labels and
    annotations (values sent for the others are replaced)."""

    name: DnsLabel | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    tenant: str | None = Field(None, description="The caller's tenant (set by the server).")
    creator: str | None = Field(None, description="The creating user (set by the server).")
    version: int | None = Field(None, description="Bumped on every change (set by the server).")
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None


class PrivateMetadata(Metadata):
    finalizers: list[str] = Field(default_factory=list)


class ComputeInstanceImage(Strict):
    source_type: str | None = None
    source_ref: str | None = None


class ComputeInstanceDisk(Strict):
    size_gib: Annotated[int, Field(ge=1)]


class NetworkAttachment(Strict):
    subnet: str | None = None
    security_groups: list[str] = Field(default_factory=list)


class ComputeInstanceSpec(Strict):
    template: str = Field(description="Template id; immutable.")
    template_parameters: dict[str, Any] = Field(
        default_factory=dict, description="Values of the template's parameters; immutable."
    )
    restart_requested_at: datetime | None = None
    image: ComputeInstanceImage | None = Field(None, description="Immutable.")
    ssh_public_key: str | None = None
    boot_disk: ComputeInstanceDisk | None = Field(None, description="Immutable.")
    additional_disks: list[ComputeInstanceDisk] = Field(
        default_factory=list, description="Immutable."
    )
    run_strategy: Literal["Always", "Halted"] | None = None
    user_data: str | None = Field(None, description="cloud-init user data.")
    network_attachments: list[NetworkAttachment] = Field(default_factory=list)
    catalog_item: str | None = None
    instance_type: str | None = None


class ComputeInstanceCondition(Strict):
    type: ComputeInstanceConditionType
    status: ConditionStatus = ConditionStatus.UNSPECIFIED
    last_transition_time: datetime | None = None
    reason: str | None = None
    message: str | None = None


class ComputeInstanceStatus(Strict):
    state: ComputeInstanceState = ComputeInstanceState.UNSPECIFIED
    conditions: list[ComputeInstanceCondition] = Field(default_factory=list)
    internal_ip_address: str | None = None
    external_ip_address: str | None = None
    last_restarted_at: datetime | None = None
    state_transition_time: datetime | None = Field(None, description="Suitable for billing.")


class PrivateComputeInstanceStatus(ComputeInstanceStatus):
    hub: str | None = Field(None, description="Id of the hub the record was placed on.")


class ComputeInstance(Strict):
    """A tenant's compute instance (public view)."""

    id: str | None = Field(None, description="Assigned by the server.")
    metadata: Metadata = Field(default_factory=Metadata)
    spec: ComputeInstanceSpec
    status: ComputeInstanceStatus = Field(
        default_factory=ComputeInstanceStatus, description="Set by the system; read-only here."
    )


class PrivateComputeInstance(Strict):
    """A compute instance as the controller, the operator's feedback and admins see it."""

    id: str | None = None
    metadata: PrivateMetadata = Field(default_factory=PrivateMetadata)
    spec: ComputeInstanceSpec
    status: PrivateComputeInstanceStatus = Field(default_factory=PrivateComputeInstanceStatus)


class HubSpec(Strict):
    kubeconfig_ref: str = Field(
        description="Where the hub's kubeconfig is (a file path or a Secret's name); the "
        "credentials themselves are never stored in a record."
    )
    namespace: DnsLabel = Field(description="Namespace where resources are created.")


class Hub(Strict):
    """A cluster records are placed on (private)."""

    id: str | None = None
    metadata: PrivateMetadata = Field(default_factory=PrivateMetadata)
    spec: HubSpec
    status: dict[str, Any] = Field(default_factory=dict)


class ComputeInstanceSpecPatch(ComputeInstanceSpec):
    template: str | None = None  # type: ignore[assignment]


class ComputeInstancePatch(Strict):
    """A PATCH body: any part of the object; `update_mask` says which parts count."""

    id: str | None = None
    metadata: Metadata | None = None
    spec: ComputeInstanceSpecPatch | None = None
    status: ComputeInstanceStatus | None = None


class PrivateComputeInstancePatch(Strict):
    id: str | None = None
    metadata: PrivateMetadata | None = None
    spec: ComputeInstanceSpecPatch | None = None
    status: PrivateComputeInstanceStatus | None = None


class HubSpecPatch(Strict):
    kubeconfig_ref: str | None = None
    namespace: DnsLabel | None = None


class HubPatch(Strict):
    id: str | None = None
    metadata: PrivateMetadata | None = None
    spec: HubSpecPatch | None = None
    status: dict[str, Any] | None = None


class ComputeInstanceList(Strict):
    size: int
    total: int
    items: list[ComputeInstance]


class PrivateComputeInstanceList(Strict):
    size: int
    total: int
    items: list[PrivateComputeInstance]


class HubList(Strict):
    size: int
    total: int
    items: list[Hub]


class Event(Strict):
    """One line of the public event stream."""

    id: str = Field(description="Grows with commits; not a resume token.")
    type: EventType
    compute_instance: ComputeInstance


class PrivateEvent(Strict):
    """One line of the private event stream: a compute instance or a hub."""

    id: str
    type: EventType
    compute_instance: PrivateComputeInstance | None = None
    hub: Hub | None = None


class ErrorDetail(Strict):
    field: str
    reason: str


class Error(Strict):
    """Every error answer: the HTTP status, one sentence, and the fields at fault."""

    code: int
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


def names_field(model: type[BaseModel], path: str) -> bool:
    """Whether a dotted path (`spec.boot_disk.size_gib`) names a field of `model`."""
    current: type[BaseModel] | None = model
    for name in path.split("."):
        if current is None or name not in current.model_fields:
            return False
        current = _submodel(current.model_fields[name].annotation)
    return True


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (unwrapping `X | None`); None for scalars, lists and maps."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


# Where the private API's additions live in an object: trimmed for tenants.
PRIVATE_ONLY = (("metadata", "finalizers"), ("status", "hub"))


def public_view(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what only the private API shows (a copy; `obj` is untouched)."""
    view = dict(obj)
    for section, name in PRIVATE_ONLY:
        part = view.get(section)
        if isinstance(part, dict) and name in part:
            view[section] = {k: v for k, v in part.items() if k != name}
    return view


def wire(model: BaseModel) -> dict[str, Any]:
    """A validated model as the JSON the store keeps: unset optional fields left out."""
    return model.model_dump(mode="json", exclude_none=True)
