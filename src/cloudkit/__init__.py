"""cloudkit: a Kubernetes operator that turns ComputeInstances into VMs through Ansible automation."""

__version__ = "0.1.0"
