"""Pydantic models of the ComputeInstance resource: spec, status, job records, conditions.

Field names on the wire are upstream's (camelCase, `templateID`, `jobID`), so existing
playbooks, tooling and e2e tests keep working. Validation bounds here mirror the CRD schema
generated from these models (cloudkit.api.crd); the API server enforces the CRD, these models
let Python code read and write the same data with types.

Every field's docstring (or `Field(description=...)`) and every model's class docstring is
the description `kubectl explain` shows: the CRD takes them from here, so they cannot drift.
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
        # Field docstrings become schema descriptions, hence `kubectl explain` text.
        use_attribute_docstrings=True,
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
    """The disk image the virtual machine boots from. Immutable once set."""

    source_type: ImageSourceType = Field(description="Where the image comes from.")
    source_ref: Annotated[str, Field(min_length=1, description="Image reference.")]


class Disk(_Model):
    """A disk of the virtual machine."""

    size_gi_b: Annotated[int, Field(alias="sizeGiB", ge=1, le=65536, description="Size in GiB.")]
    storage_class: str | None = Field(default=None, description="Storage class; default if unset.")


class SecretReference(_Model):
    """A Secret in the instance's namespace."""

    name: Annotated[str, Field(min_length=1)]
    """Name of the Secret."""


class ComputeInstanceSpec(_Model):
    """Desired state: what to provision and how to run it."""

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
    """The disk image to boot from. Immutable once set."""
    cores: Annotated[int | None, Field(ge=1, le=128, description="Virtual CPU cores.")] = None
    memory_gi_b: Annotated[
        int | None, Field(alias="memoryGiB", ge=1, le=1024, description="Memory in GiB.")
    ] = None
    boot_disk: Disk | None = None
    """The disk the image is written to. Immutable once set."""
    additional_disks: list[Disk] | None = Field(default=None, max_length=16)
    """Further data disks (at most 16). Immutable once set."""
    run_strategy: RunStrategy | None = Field(
        default=None, description="Always (running) or Halted (stopped)."
    )
    user_data_secret_ref: SecretReference | None = None
    """A Secret whose `userdata` key holds cloud-init user data for the first boot."""
    ssh_key: str | None = Field(default=None, description="Public SSH key for the default user.")
    restart_requested_at: datetime | None = Field(
        default=None, description="Set to the current time to request a restart."
    )


IMMUTABLE_SPEC_FIELDS = ("image", "cores", "memoryGiB", "bootDisk", "additionalDisks")
"""Upstream marks these immutable (CEL `self == oldSelf`); changing them needs a new instance."""


# --- status -----------------------------------------------------------------------------------


class Phase(StrEnum):
    """The instance's lifecycle phase."""

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
    """One aspect of the instance's state, in the standard Kubernetes condition form."""

    type: str
    """Accepted, Progressing, Available, Deleting, RestartInProgress or RestartFailed."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds: True, False or Unknown."""
    reason: str = ""
    """A one-word CamelCase reason for the last transition."""
    message: str = ""
    """The last transition in words, for people."""
    last_transition_time: datetime | None = None
    """When `status` last changed."""
    observed_generation: int | None = None
    """The `metadata.generation` the condition was set for."""


class JobStatus(_Model):
    """The current provision or deprovision job (`status.provisionJob` / `deprovisionJob`).

    An entry with a `correlationID` and an empty `id` is a persisted launch intent: the launch
    may or may not have reached the backend, so it is looked up before launching again.
    """

    id: str = Field(default="", description="Backend job id; empty while only intended.")
    state: JobState = Field(default=JobState.PENDING, description="Last known job state.")
    message: str = ""
    """What the backend says about the job (its explanation, or the error)."""
    block_deletion_on_failure: bool = False
    """For deprovision jobs: whether a failure keeps the finalizer (deletion blocked)."""
    correlation_id: str | None = Field(default=None, alias="correlationID")
    """A unique id sent with the launch, so a restarted operator can find the job."""
    config_version: str | None = None
    """The spec's configuration version (hash) the job was started for."""
    launched_at: datetime | None = None
    """When the launch was decided (the intent), UTC."""
    state_changed_at: datetime | None = None
    """When `state` last changed; drives adaptive polling."""
    finished_at: datetime | None = None
    """When the job reached a terminal state, UTC."""
    cancel_requested_at: datetime | None = None
    """When the operator asked the backend to cancel the job, UTC."""
    purged: bool | None = None
    """The backend no longer knows the job; `state` is the last state seen."""
    provider: str | None = Field(
        default=None, description="The provider that runs the job: aap or eda."
    )
    automation_finalizer_at_launch: bool | None = None
    """Deprovision jobs: the automation finalizer was on the instance when the launch was
    decided, so its removal is this job's playbook reporting every VM gone (its last mark)."""


class JobRecord(_Model):
    """One entry of `status.jobs[]`, the bounded history of every job started."""

    job_id: str = Field(default="", alias="jobID")
    """Backend job id."""
    type: JobType
    """provision or deprovision."""
    timestamp: datetime = Field(description="UTC launch time.")
    state: JobState = Field(description="Last known job state.")
    message: str = ""
    """What the backend said about the job."""
    block_deletion_on_failure: bool = False
    """For deprovision jobs: whether a failure blocked the deletion."""
    correlation_id: str | None = Field(default=None, alias="correlationID")
    """The unique id sent with the launch."""
    config_version: str | None = None
    """The spec's configuration version (hash) the job was started for."""
    finished_at: datetime | None = None
    """When the job reached a terminal state, UTC."""
    provider: str | None = Field(
        default=None, description="The provider that ran the job: aap or eda."
    )


class VirtualMachineReference(_Model):
    """The KubeVirt VirtualMachine that backs the instance."""

    namespace: str
    """Namespace of the VirtualMachine."""
    kube_virt_virtual_machine_name: str = Field(alias="kubeVirtVirtualMachineName")
    """Name of the VirtualMachine."""


class TenantReference(_Model):
    """The tenant the instance belongs to (set by the provisioning automation)."""

    name: str
    """Name of the tenant."""
    namespace: str
    """Namespace of the tenant's resources."""


class ComputeInstanceStatus(_Model):
    """Observed state, written by the operator only."""

    phase: Phase | None = None
    """Progressing, Ready, Failed or Deleting."""
    conditions: list[Condition] = Field(default_factory=list)
    """The instance's conditions, one per type."""
    provision_job: JobStatus | None = Field(default=None, description="The current provision job.")
    deprovision_job: JobStatus | None = Field(
        default=None, description="The current deprovision job."
    )
    jobs: list[JobRecord] = Field(
        default_factory=list,
        description="Every job started, oldest first, trimmed to the newest N.",
    )
    desired_config_version: str | None = None
    """A stable hash of the current spec."""
    reconciled_config_version: str | None = None
    """The `desiredConfigVersion` the last successful provision job applied."""
    virtual_machine_reference: VirtualMachineReference | None = None
    """The VirtualMachine the provisioning automation created."""
    tenant_reference: TenantReference | None = None
    """The tenant the provisioning automation placed the instance in."""
    last_restarted_at: datetime | None = None
    """The `spec.restartRequestedAt` of the last restart carried out."""
    ip_address: str | None = Field(
        default=None,
        description="First IP address of the VirtualMachineInstance's interfaces, if any.",
    )
    observed_generation: int | None = None
    """The `metadata.generation` the operator last acted on."""


# --- the resource -----------------------------------------------------------------------------


class ObjectMeta(_Model):
    """Standard object metadata: name, namespace, labels, annotations, finalizers."""

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
    """A virtual machine provisioned and deprovisioned by Ansible automation."""

    api_version: Literal["cloudkit.openshift.io/v1alpha1"] = "cloudkit.openshift.io/v1alpha1"
    """Versioned schema of this representation of an object."""
    kind: Literal["ComputeInstance"] = "ComputeInstance"
    """REST resource this object represents."""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
    spec: ComputeInstanceSpec
    """Desired state: what to provision and how to run it."""
    status: ComputeInstanceStatus = Field(default_factory=ComputeInstanceStatus)
    """Observed state, written by the operator only."""

    @property
    def deleting(self) -> bool:
        return self.metadata.deletion_timestamp is not None

    @property
    def management_state(self) -> str | None:
        return self.metadata.annotations.get(names.MANAGEMENT_STATE_ANNOTATION)
