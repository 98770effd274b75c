"""The operator shell's tests can fail: each known way of breaking it is caught, on every run.

The technique of tests/unit/lifecycle/test_mutants.py, for the shell: each mutant is one small
edit of `cloudkit.operator` that breaks a guarantee (what is written before I/O, which decisions
need fresh reads, what a pass re-reads, launch slots, the watch cache's ordering, the work
queue's lanes, leadership). The source tree is copied, the edit applied, and the test
answerable for it is run against the copy (tests/harness/mutants.py): it must fail. An edit
that no longer applies fails too, so the table cannot silently rot, and a control runs every
answerable test on an unedited copy, so a failure means the edit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.mutants import Mutant, MutantRunner, mutated_tree

TESTS = "tests/unit/operator"


MUTANTS = [
    # --- must_persist: what is written before the I/O runs (invariant 4) ----------------------
    Mutant(
        "a provisioning launch sent before its intent is written",
        "operator/reconcile.py",
        "_FENCED_ACTIONS = (LaunchProvision, LaunchDeprovision,",
        "_FENCED_ACTIONS = (LaunchDeprovision,",
        "test_must_persist.py::test_io_that_acts_is_written_first",
    ),
    Mutant(
        "a finalizer change not written with its decision",
        "operator/reconcile.py",
        "    if decision.io is None or decision.finalizers:\n",
        "    if decision.io is None:\n",
        "test_must_persist.py::test_an_ending_pass_and_finalizer_changes_are_written",
    ),
    Mutant(
        "a launch's outcome not written before the next poll",
        "operator/reconcile.py",
        "return bool(observation.outcomes) and isinstance(observation.outcomes[-1], _FENCED_",
        "return False and isinstance(observation.outcomes[-1], _FENCED_",
        "test_must_persist.py::test_what_records_an_action_s_outcome_is_written_before_a_poll",
    ),
    # --- acts_on_reads: irreversible decisions on fresh reads only ----------------------------
    Mutant(
        "a VMI deleted on cached reads",
        "operator/reconcile.py",
        "    return isinstance(decision.io, RestartVirtualMachine)\n",
        "    return False\n",
        "test_acts_on_reads.py::test_deleting_a_vmi_is_decided_on_fresh_reads",
    ),
    Mutant(
        "the finalizer removed on cached reads",
        "operator/reconcile.py",
        "if any(isinstance(action, RemoveFinalizer) for action in decision.finalizers):",
        "if False:",
        "test_acts_on_reads.py::test_removing_the_finalizer_is_decided_on_fresh_reads",
    ),
    # --- what a pass reads fresh ---------------------------------------------------------------
    Mutant(
        "a decision that acts on reads re-reads the instance but keeps the cached VMs",
        "operator/reconcile.py",
        "            return Freshness(instance=True, vms=True, relist_vms=True)\n",
        "            return replace(self, instance=True)\n",
        "test_pass_reads.py::test_a_decision_that_acts_on_reads_re_reads_the_instance_and_its_vms",
    ),
    Mutant(
        "a write conflict starts the pass over on the cached instance",
        "operator/reconcile.py",
        "        return replace(self, instance=True)\n",
        "        return self\n",
        "test_pass_reads.py::test_a_write_conflict_re_reads_the_instance_only",
    ),
    # --- launch slots --------------------------------------------------------------------------
    Mutant(
        "a slot never freed when its job ends",
        "operator/launch_slots.py",
        "        released = key in self._holders\n        self._holders.discard(key)\n",
        "        released = False\n",
        "test_launch_slots.py::test_the_limit_holds_and_the_waiting_launch_first_come_first_served",
    ),
    Mutant(
        "admission out of order (a later key overtakes the first in line)",
        "operator/launch_slots.py",
        "            return key in islice(self._waiting, free)\n",
        "            return True\n",
        "test_launch_slots.py::test_the_limit_holds_and_the_waiting_launch_first_come_first_served",
    ),
    Mutant(
        "a newcomer admitted ahead of the keys waiting",
        "operator/launch_slots.py",
        "        return len(self._waiting) < free\n",
        "        return True\n",
        "test_launch_slots.py::test_the_limit_holds_and_the_waiting_launch_first_come_first_served",
    ),
    # --- the watch cache's ordering ------------------------------------------------------------
    Mutant(
        "an older version wins over a newer one",
        "operator/cache.py",
        "        return int(new) >= int(old)\n",
        "        return True\n",
        "test_cache.py::test_the_larger_decimal_version_wins_else_the_last_arrival",
    ),
    Mutant(
        "a deletion's tombstone ignored",
        "operator/cache.py",
        "            if not newer(self.tombstones[key], version):\n",
        "            if False:\n",
        "test_cache.py::test_a_deletion_removes_and_an_older_version_cannot_bring_it_back",
    ),
    Mutant(
        "a forgotten instance remembered at no version (a late store resurrects it)",
        "operator/cache.py",
        "            version = None if current is None else resource_version(current)\n",
        "            version = None\n",
        "test_cache.py::test_a_forgotten_instance_is_not_brought_back_by_a_late_store_of_a_version_it_had",
    ),
    # --- the work queue's lanes ----------------------------------------------------------------
    Mutant(
        "the lowest lane taken first",
        "operator/workqueue.py",
        "        for priority in sorted(Priority, reverse=True):\n",
        "        for priority in sorted(Priority):\n",
        "test_workqueue.py::test_a_high_key_runs_before_due_normal_and_low_keys",
    ),
    Mutant(
        "a due LOW key never gets a turn while the higher lanes are busy",
        "operator/workqueue.py",
        "self._passed_over = self._passed_over + 1 if low_waits else 0",
        "self._passed_over = 0",
        "test_workqueue.py::test_a_backlog_of_work_in_flight_gives_new_instances_a_turn",
    ),
    Mutant(
        "a re-add in a higher lane does not upgrade the queued key",
        "operator/workqueue.py",
        "            due, priority = min(due, current), max(priority, lane)\n",
        "            due, priority = min(due, current), lane\n",
        "test_workqueue.py::test_re_adding_with_a_higher_priority_upgrades_the_queued_key",
    ),
    Mutant(
        "a key re-added while it runs loses its higher lane",
        "operator/workqueue.py",
        "self._parked[key] = (min(due, parked_due), max(priority, parked_lane))",
        "self._parked[key] = (min(due, parked_due), priority)",
        "test_workqueue.py::test_a_key_added_while_processing_keeps_its_highest_lane",
    ),
    # --- leadership ----------------------------------------------------------------------------
    Mutant(
        "a leader that keeps acting past its renew deadline",
        "operator/leadership.py",
        "    return now - last_renewed >= renew_deadline_s\n",
        "    return False\n",
        "test_leadership.py::test_a_leader_has_lost_once_the_renew_deadline_passed_without_renewal",
    ),
    Mutant(
        "a leader that acts through the very instant of its renew deadline",
        "operator/leadership.py",
        "    return now - last_renewed >= renew_deadline_s\n",
        "    return now - last_renewed > renew_deadline_s\n",
        "test_leadership.py::test_a_leader_has_lost_once_the_renew_deadline_passed_without_renewal",
    ),
]


def test_the_answerable_tests_pass_on_an_unedited_copy(
    tmp_path: Path, mutant_runner: MutantRunner
) -> None:
    answerable = sorted({f"{TESTS}/{m.caught_by}" for m in MUTANTS})
    run = mutant_runner.run(mutated_tree(tmp_path, None), answerable)
    assert run.returncode == 0, run.output[-3000:]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_is_caught(mutant: Mutant, tmp_path: Path, mutant_runner: MutantRunner) -> None:
    run = mutant_runner.run(mutated_tree(tmp_path, mutant), [f"{TESTS}/{mutant.caught_by}"])
    assert run.returncode == 1, f"{mutant.name}: survived\n{run.output[-2000:]}"
    assert any(mutant.caught_by in line for line in run.failed()), (
        f"{mutant.name}: not caught by {mutant.caught_by}; failures: {run.failed()}"
    )
