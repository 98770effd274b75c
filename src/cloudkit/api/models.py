"""Pydantic models of the ComputeInstance resource: spec, status, job records, conditions.

Field names on the wire are upstream's (camelCase, `templateID`, `jobID`), so existing
playbooks, tooling and e2e tests keep working. Validation bounds here mirror the CRD schema
generated from these models (cloudkit.api.crd); the API server enforces the CRD, these models
let Python code read and write the same data with types.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cloudkit.api import names
from cloudkit.api.jobs import JobState, JobType

TEMPLATE_ID_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9._]*$"


class _Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields kept (forward compatible)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        use_enum_values=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON form the Kubernetes API stores (aliases, no unset optionals)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --- spec -------------------------------------------------------------------------------------


class ImageSourceType(StrEnum):
    REGISTRY = "registry"


class RunStrategy(StrEnum):
    ALWAYS = "Always"
    HALTED = "Halted"


class Image(_Model):
    source_type: ImageSourceType = Field(description="Where the image comes from.")
    source_ref: Annotated[str, Field(min_length=1, description="Image reference.")]


class Disk(_Model):
    size_gi_b: Annotated[int, Field(alias="sizeGiB", ge=1, le=65536, description="Size in GiB.")]
    storage_class: str | None = Field(default=None, description="Storage class; default if unset.")


class SecretReference(_Model):
    name: Annotated[str, Field(min_length=1)]


class ComputeInstanceSpec(_Model):
    template_id: Annotated[
        str,
        Field(
            alias="templateID",
            pattern=TEMPLATE_ID_PATTERN,
            description="Name of the automation template that provisions the instance.",
        ),
    ]
    template_parameters: str | None = Field(
        default=None, description="JSON-encoded map of template parameters."
    )
    image: Image | None = None
    cores: Annotated[int | None, Field(ge=1, le=128, description="Virtual CPU cores.")] = None
    memory_gi_b: Annotated[
        int | None, Field(alias="memoryGiB", ge=1, le=1024, description="Memory in GiB.")
    ] = None
    boot_disk: Disk | None = None
    additional_disks: list[Disk] | None = Field(default=None, max_length=16)
    run_strategy: RunStrategy | None = Field(
        default=None, description="Always (running) or Halted (stopped)."
    )
    user_data_secret_ref: SecretReference | None = None
    ssh_key: str | None = Field(default=None, description="Public SSH key for the default user.")
    restart_requested_at: datetime | None = Field(
        default=None, description="Set to the current time to request a restart."
    )


IMMUTABLE_SPEC_FIELDS = ("image", "cores", "memoryGiB", "bootDisk", "additionalDisks")
"""Upstream marks these immutable (CEL `self == oldSelf`); changing them needs a new instance."""


# --- status -----------------------------------------------------------------------------------


class Phase(StrEnum):
    PROGRESSING = "Progressing"
    READY = "Ready"
    FAILED = "Failed"
    DELETING = "Deleting"


class ConditionType(StrEnum):
    ACCEPTED = "Accepted"
    PROGRESSING = "Progressing"
    AVAILABLE = "Available"
    DELETING = "Deleting"
    RESTART_IN_PROGRESS = "RestartInProgress"
    RESTART_FAILED = "RestartFailed"


class Condition(_Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class JobStatus(_Model):
    """The current provision or deprovision job (`status.provisionJob` / `deprovisionJob`).

    An entry with a `correlationID` and an empty `id` is a persisted launch intent: the launch
    may or may not have reached the backend, so it is looked up before launching again.
    """

    id: str = Field(default="", description="Backend job id; empty while only intended.")
    state: JobState = Field(default=JobState.PENDING, description="Last known job state.")
    message: str = ""
    block_deletion_on_failure: bool = False
    correlation_id: str | None = Field(default=None, alias="correlationID")
    config_version: str | None = None
    launched_at: datetime | None = None
    """When the launch was decided (the intent), UTC."""
    state_changed_at: datetime | None = None
    """When `state` last changed; drives adaptive polling."""
    finished_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    purged: bool | None = None
    """The backend no longer knows the job; `state` is the last state seen."""
    provider: str | None = Field(
        default=None, description="The provider that runs the job: aap or eda."
    )


class JobRecord(_Model):
    """One entry of `status.jobs[]`, the bounded history of every job started."""

    job_id: str = Field(default="", alias="jobID")
    type: JobType
    timestamp: datetime = Field(description="UTC launch time.")
    state: JobState = Field(description="Last known job state.")
    message: str = ""
    block_deletion_on_failure: bool = False
    correlation_id: str | None = Field(default=None, alias="correlationID")
    config_version: str | None = None
    finished_at: datetime | None = None
    provider: str | None = Field(
        default=None, description="The provider that ran the job: aap or eda."
    )


class VirtualMachineReference(_Model):
    namespace: str
    kube_virt_virtual_machine_name: str = Field(alias="kubeVirtVirtualMachineName")


class TenantReference(_Model):
    name: str
    namespace: str


class ComputeInstanceStatus(_Model):
    phase: Phase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    provision_job: JobStatus | None = Field(default=None, description="The current provision job.")
    deprovision_job: JobStatus | None = Field(
        default=None, description="The current deprovision job."
    )
    jobs: list[JobRecord] = Field(
        default_factory=list,
        description="Every job started, oldest first, trimmed to the newest N.",
    )
    desired_config_version: str | None = None
    reconciled_config_version: str | None = None
    virtual_machine_reference: VirtualMachineReference | None = None
    tenant_reference: TenantReference | None = None
    last_restarted_at: datetime | None = None
    ip_address: str | None = Field(
        default=None,
        description="First IP address of the VirtualMachineInstance's interfaces, if any.",
    )
    observed_generation: int | None = None


# --- the resource -----------------------------------------------------------------------------


class ObjectMeta(_Model):
    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: list[str] = Field(default_factory=list)


class ComputeInstance(_Model):
    api_version: Literal["cloudkit.openshift.io/v1alpha1"] = "cloudkit.openshift.io/v1alpha1"
    kind: Literal["ComputeInstance"] = "ComputeInstance"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ComputeInstanceSpec
    status: ComputeInstanceStatus = Field(default_factory=ComputeInstanceStatus)

    @property
    def deleting(self) -> bool:
        return self.metadata.deletion_timestamp is not None

    @property
    def management_state(self) -> str | None:
        return self.metadata.annotations.get(names.MANAGEMENT_STATE_ANNOTATION)
