"""cloudkit: a Kubernetes operator turning ComputeInstances into VMs via Ansible automation."""

__version__ = "0.1.0"
