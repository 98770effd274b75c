"""End-to-end scenarios with named validations, run against any kubeconfig (`cloudkit scenario`).

A scenario drives ComputeInstances through the Kubernetes API only, as a user would, records
every version of each instance it watches, and judges the recording with named validations
(`validations`); `runner` starts a local stack when no kubeconfig is given. It must not import
the local stack: it is reached over the network like a real cluster.
"""
