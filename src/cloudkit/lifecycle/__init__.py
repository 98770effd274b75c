"""The lifecycle core: pure decisions for provisioning and deprovisioning a ComputeInstance.

`decide(instance, observation, now, config) -> Decision`. No I/O and no clocks (time is an
argument); imports only cloudkit.api and the standard library (import-linter enforces it).
The shell's loop around it is described in cloudkit.lifecycle.types.
"""

from cloudkit.lifecycle.decide import decide

__all__ = ["decide"]
