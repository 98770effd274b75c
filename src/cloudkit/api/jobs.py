"""Job states and types shared by the lifecycle core, the providers and the status model."""

from dataclasses import dataclass
from enum import StrEnum


class JobState(StrEnum):
    """State of an automation job as shown in ComputeInstance status (upstream's enum)."""

    PENDING = "Pending"
    WAITING = "Waiting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"
    UNKNOWN = "Unknown"

    @property
    def terminal(self) -> bool:
        """Succeeded, Failed and Canceled are final; Unknown is not (upstream semantics)."""
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED})


EDA_JOB_ID_PREFIX = "eda-webhook-"
"""EDA job ids are `eda-webhook-<n>`. Only for statuses written before jobs recorded their
provider (`JobStatus.provider`): the id is then the one clue to which provider ran a job."""


class JobType(StrEnum):
    PROVISION = "provision"
    DEPROVISION = "deprovision"


@dataclass(frozen=True, slots=True)
class JobReading:
    """One observation of a job: state and message always travel together (invariant 2)."""

    job_id: str
    state: JobState
    message: str
    details: str = ""
    purged: bool = False
    """The backend no longer knows the job (AAP 404 after a purge); state is the last known."""


@dataclass(frozen=True, slots=True)
class ProviderCapabilities:
    """What a backend can do; the lifecycle core reads these instead of the provider's name."""

    polls_jobs: bool
    """Job status can be read (AAP). EDA cannot: completion shows on the resource."""
    cancels_jobs: bool
    """Running jobs can be canceled (AAP)."""
    finds_jobs: bool
    """A launch can be found again by its correlation id after a crash (AAP)."""
    block_deletion_on_failure: bool
    """A failed deprovision blocks deletion (AAP true, EDA false, as upstream)."""
    deprovision_needs_automation_finalizer: bool
    """EDA: no automation finalizer on the resource means nothing to deprovision."""


AAP_CAPABILITIES = ProviderCapabilities(
    polls_jobs=True,
    cancels_jobs=True,
    finds_jobs=True,
    block_deletion_on_failure=True,
    deprovision_needs_automation_finalizer=False,
)
EDA_CAPABILITIES = ProviderCapabilities(
    polls_jobs=False,
    cancels_jobs=False,
    finds_jobs=False,
    block_deletion_on_failure=False,
    deprovision_needs_automation_finalizer=True,
)
