"""Test fixtures shared by every tier: stacks started through the product's own `start_stack`.

- `stack_lab`: a started stack (`cloudkit.local.stack.start_stack`) with its clients, a recorder
  of every instance version, and the means to kill and restart its children.
- `replicas`: the same stack with operator replicas the tests start, signal and cut off
  (through the stack's fault relay, `cloudkit.local.stack.faults`), and the Lease.
- `in_process`: the same stack without an operator, and a reconciler driven pass by pass in the
  test's own process.
- `up`: `cloudkit up` itself as a subprocess (the product's `start_stack` behind its command),
  for tests of what a person does with it; `scenario_runs`: `cloudkit scenario` against such a
  stack or on its own, and the validations each scenario must report.
- `holds`, `kills`, `checks`: the resilience proofs' stops, kill bursts and job checks.
- `operators`: the same stack on a loop thread for blocking tests, and more `cloudkit operator`
  processes started as the stack starts its own, with other settings.
- `mutants`: the mutant tables' runs (a copy of the source with one edit, pytest forked from one
  server process per run).
- `kube_clients`: the synchronous Kubernetes client, typed where its annotations lie (dict
  bodies, fields the server always fills, the untyped config helpers and `Watch`).
- `handout`: what the run's hand-out would take with N workers, simulated from a `--cpu-json`.
- `cpu_report`: the pytest plugin that reports each test's CPU (`--cpu-top`, `--cpu-json`).
"""
