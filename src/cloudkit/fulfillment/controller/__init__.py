"""The fulfillment controller: records of the fulfillment API become ComputeInstance resources.

`decision` (pure: record + observation → actions) and `resource_spec` (pure: record → the
resource's body and patches) decide; `hubs` (which kubeconfig a hub may use), `kube` (the
resource and its Secret on a hub), `reconcile` (one record: observe, decide, act) and `runner`
(event stream, re-list, work queue, Lease) are the shell.
"""
