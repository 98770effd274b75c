"""The operator shell: kopf watches, a per-key work queue runs the lifecycle core's decisions.

Owns settings from the environment (settings), Kubernetes I/O (kube), executing I/O actions
through a provider (actions), one reconcile (reconcile), the queue (workqueue), job
notifications (notifications), metrics and the kopf wiring (main). Decides nothing itself:
policy is cloudkit.lifecycle's; talking to automation is cloudkit.providers'.
"""
