"""The lifecycle tests can fail: each known way of breaking the core is caught, on every run.

Every mutant below is one small edit of `cloudkit.lifecycle` that breaks a guarantee (a review
found most of them passing the suite, or failing it only on lucky property-test draws). For each,
the source tree is copied, the edit applied, and the answerable deterministic lifecycle test is
run against the copy (tests/harness/mutants.py): it must fail. An edit that no longer
applies fails too, so the table cannot silently rot when the core changes; a control runs the
same tests on an unedited copy, so a failure means the edit.

Hand-written rather than a mutation-testing tool: those generate thousands of blind mutants
and take minutes; this table holds the few that matter, with the test answerable for each.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.harness.mutants import ROOT, Mutant, MutantRunner, mutated_tree

DETERMINISTIC = [
    "tests/unit/lifecycle/test_guarantees.py",
    "tests/unit/lifecycle/test_delete_during_provision.py",
    "tests/unit/lifecycle/test_units.py",
    "tests/unit/lifecycle/test_restart.py",
    "tests/unit/lifecycle/test_launch_slot.py",
    "tests/unit/lifecycle/test_notified_readings.py",
]


MUTANTS = [
    Mutant(
        "relaunch without first looking the job up by correlation id",
        "lifecycle/launch.py",
        "if caps.finds_jobs and lookup is None:",
        "if False:",
        "test_crash_after_the_launch_reached_the_backend_finds_the_job",
    ),
    Mutant(
        "an intent never sent restarted under a new correlation id",
        "lifecycle/launch.py",
        "    step.act(_launch_action(job_type, cid))",
        "    start(step, job_type, config_version=job.config_version)",
        "test_an_intent_never_sent_is_launched_under_its_own_correlation_id",
    ),
    Mutant(
        "finalizer released when a blocking deprovision job failed",
        "lifecycle/deprovision.py",
        "elif not job.block_deletion_on_failure:",
        "elif True:",
        "test_a_failed_blocking_deprovision_job_keeps_the_finalizer_and_is_retried",
    ),
    Mutant(
        "a purged deprovision job counted as success",
        "lifecycle/deprovision.py",
        "if job.state is JobState.SUCCEEDED:",
        "if job.state is JobState.SUCCEEDED or job.purged:",
        "test_a_purged_deprovision_job_is_not_taken_for_a_success",
    ),
    Mutant(
        "a refused deprovision launch does not block the deletion",
        "lifecycle/step.py",
        "        job.block_deletion_on_failure = True\n",
        "",
        "test_a_refused_deprovision_launch_keeps_the_finalizer_until_the_template_is_fixed",
    ),
    Mutant(
        "a deprovision intent carries no blocking policy (job found after a crash)",
        "lifecycle/jobs.py",
        "block = job_type is JobType.DEPROVISION and config.capabilities.block_deletion_on_failure",
        "block = False",
        "test_a_purged_deprovision_job_is_not_taken_for_a_success",
    ),
    Mutant(
        "back-off of a refused launch counted from the old intent",
        "lifecycle/step.py",
        "    job.launched_at = step.now\n",
        "",
        "test_backoff_of_a_refused_launch_runs_from_the_refusal",
    ),
    Mutant(
        "AAP waits for the job's verdict after its playbook's last mark",
        "lifecycle/deprovision.py",
        "    if _cleanup_marked(step, job):",
        "    if False:",
        "test_aap_releases_at_the_deprovision_playbook_s_last_mark",
    ),
    Mutant(
        "an automation finalizer absent at the deprovision launch taken as a mark",
        "lifecycle/deprovision.py",
        "        bool(job.automation_finalizer_at_launch)\n        and bool(job.id)",
        "        bool(job.id)",
        "test_a_deprovision_whose_playbook_never_saw_the_automation_finalizer_waits_for_its_job",
    ),
    Mutant(
        "an automation finalizer removed with a VM still listed taken as a mark",
        "lifecycle/deprovision.py",
        "        and step.observation.vms == ()",
        "",
        "test_an_automation_finalizer_removed_by_hand_with_the_vm_left_proves_nothing",
    ),
    Mutant(
        "an accepted cancel taken as the final Canceled state",
        "lifecycle/step.py",
        "        job.cancel_requested_at = step.now\n",
        "        job.cancel_requested_at = step.now\n"
        "        job.state, job.message = JobState.CANCELED, 'canceled'\n",
        "test_an_accepted_cancel_is_not_the_final_state",
    ),
    Mutant(
        "the cancel never re-sent after the cancel grace period",
        "lifecycle/deprovision.py",
        "and step.now - job.cancel_requested_at >= step.config.cancel_grace",
        "and False",
        "test_a_lost_cancel_is_sent_again_after_the_grace_period",
    ),
    Mutant(
        "deprovision launched without canceling the running provision job",
        "lifecycle/deprovision.py",
        "    if caps.cancels_jobs:\n        cancel = step.cancel_outcome(job.id)",
        "    if False:\n        cancel = step.cancel_outcome(job.id)",
        "test_an_accepted_cancel_is_not_the_final_state",
    ),
    Mutant(
        "a job's state written without the message of the same reading",
        "lifecycle/jobs.py",
        "        job.state = reading.state\n        job.message = message\n",
        "        job.state = reading.state\n",
        "test_an_accepted_cancel_is_not_the_final_state",
    ),
    Mutant(
        "an Event at every step of a job's progress, not only when it ends",
        "lifecycle/step.py",
        "if job.state != old_state and (job.state.terminal or job.state is JobState.UNKNOWN):",
        "if job.state != old_state:",
        "test_a_job_records_an_event_when_it_ends_not_at_each_step",
    ),
    Mutant(
        "a second Event for a release the job's success already explains",
        "lifecycle/deprovision.py",
        "        return  # this step's own Event already says why",
        "        pass  # this step's own Event already says why",
        "test_a_deletion_that_ends_with_its_job_s_success_records_one_event_for_both",
    ),
]


MUTANTS += [
    Mutant(
        "a restart recorded before KubeVirt re-created the VMI",
        "lifecycle/restart.py",
        "if created is None or _outcome(step, vm) is not None:",
        "if created is None:",
        "test_kubernetes_whole_second_timestamps_neither_hang_nor_fool_the_restart",
    ),
    Mutant(
        "a VMI re-created within the request's second never ends the restart",
        "lifecycle/restart.py",
        "return created >= requested.replace(microsecond=0)",
        "return created > requested",
        "test_kubernetes_whole_second_timestamps_neither_hang_nor_fool_the_restart",
    ),
    Mutant(
        "the VMI deleted again after the restart's provisioning failed",
        "lifecycle/restart.py",
        "if initiated or (failed is not None and failed.reason == PROVISIONING_FAILED):",
        "if initiated:",
        "test_a_failed_provisioning_job_fails_the_restart_in_progress",
    ),
    Mutant(
        "an unmanaged instance released at deletion without deprovisioning",
        "lifecycle/deprovision.py",
        "if step.instance.management_state == names.MANAGEMENT_STATE_MANUAL:",
        "if step.instance.management_state in {'manual', 'unmanaged'}:",
        "test_unmanaged_is_ignored_while_live_and_deprovisioned_when_deleted",
    ),
    Mutant(
        "a new provisioning launch ignores the launch slot",
        "lifecycle/provision.py",
        "    if observation.launch_allowed:\n        return False",
        "    if True:\n        return False",
        "test_a_held_new_instance_records_no_intent_launches_nothing_and_says_why",
    ),
    Mutant(
        "a retry after a failure ignores the launch slot",
        "lifecycle/provision.py",
        "        if _waiting_for_slot(step):\n            return\n",
        "",
        "test_a_retry_after_a_failure_waits_for_a_slot_too",
    ),
    Mutant(
        "a late job notification overwrites a newer reading",
        "lifecycle/jobs.py",
        "return heard is not None and (known is None or heard > known)",
        "return heard is not None",
        "test_a_late_notification_never_undoes_a_newer_reading",
    ),
    Mutant(
        "a notification taken for the current job whatever job it names",
        "lifecycle/jobs.py",
        "if not job.id or reading.job_id != job.id or job.purged:",
        "if not job.id or job.purged:",
        "test_a_notification_about_another_job_changes_nothing",
    ),
    Mutant(
        "notifications folded after the pass's own polls",
        "lifecycle/step.py",
        "    for reading in step.observation.notified:\n        _fold_notified(step, reading)\n"
        "    for outcome in step.observation.outcomes:",
        "    for outcome in (*step.observation.outcomes, *step.observation.notified):\n"
        "        if isinstance(outcome, JobReading):\n"
        "            _fold_notified(step, outcome)",
        "test_a_poll_of_the_same_pass_is_newer_than_the_notifications_it_started_with",
    ),
    Mutant(
        "timed polls as eager with notifications heard as without",
        "lifecycle/jobs.py",
        "return max(config.first_poll, min(config.notified_first_poll, config.poll_interval))",
        "return config.first_poll",
        "test_with_notifications_heard_timed_polls_are_the_net",
    ),
]


def test_the_deterministic_tests_pass_on_an_unedited_copy(
    tmp_path: Path, mutant_runner: MutantRunner
) -> None:
    """The control: a failure below means the edit, not the copy or the runner."""
    run = mutant_runner.run(mutated_tree(tmp_path, None), DETERMINISTIC)
    assert run.returncode == 0, run.output[-3000:]


def defining_file(test_name: str) -> str:
    """The one deterministic file that defines `test_name`: a run collects that file only
    (collecting all five cost a mutant run about twice the CPU)."""
    files = [
        f for f in DETERMINISTIC if re.search(rf"^def {test_name}\(", (ROOT / f).read_text(), re.M)
    ]
    assert len(files) == 1, f"{test_name} is defined in {files or 'no deterministic file'}"
    return files[0]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.caught_by + ":" + m.name for m in MUTANTS])
def test_mutant_is_caught(mutant: Mutant, tmp_path: Path, mutant_runner: MutantRunner) -> None:
    # Only the answerable test runs (selected by name); the control above runs them all.
    answerable = [defining_file(mutant.caught_by), "-k", mutant.caught_by]
    run = mutant_runner.run(mutated_tree(tmp_path, mutant), answerable)
    assert run.returncode == 1, f"{mutant.name}: survived\n{run.output[-2000:]}"
    assert any(mutant.caught_by in line for line in run.failed()), (
        f"{mutant.name}: not caught by {mutant.caught_by}; failures: {run.failed()}"
    )
