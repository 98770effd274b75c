"""What the tenant's commands print: ages, tables, describe and errors rendered once."""

from __future__ import annotations

import datetime

from cloudkit.fulfillment.client import ApiError, FieldError, NotFound, error_from_answer
from cloudkit.tenant.output import age, describe, error_text, row, table

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)


def test_ages_are_kubectls() -> None:
    assert age("2026-12-07T11:59:15Z", NOW) == "45s"
    assert age("2026-12-07T11:47:59.5Z", NOW) == "12m"
    assert age("2026-12-04T12:00:00+00:00", NOW) == "3d"
    assert age(None, NOW) == age("yesterday", NOW) == "<unknown>"


def test_a_row_shows_states_short_and_a_deletion() -> None:
    obj = {
        "id": "i-1",
        "metadata": {"name": "web", "deletion_timestamp": "2026-12-07T11:00:00Z"},
        "spec": {"template": "small"},
        "status": {"state": "COMPUTE_INSTANCE_STATE_RUNNING", "internal_ip_address": "10.0.0.5"},
    }
    assert row(obj)[:5] == ("i-1", "web", "small", "RUNNING (deleting)", "10.0.0.5")
    assert row({"id": "i-2", "status": {"state": "SOMETHING_NEW"}})[3] == "SOMETHING_NEW"
    assert table([("a", "bb")], ("X", "Y")) == "X   Y\na   bb"


def test_describe_shows_conditions_and_their_history() -> None:
    condition = {
        "type": "COMPUTE_INSTANCE_CONDITION_TYPE_READY",
        "status": "CONDITION_STATUS_TRUE",
        "reason": "Booted",
        "last_transition_time": "2026-12-07T11:00:00Z",
    }
    text = describe({"id": "i-1", "spec": {"template": "t"}, "status": {"conditions": [condition]}})
    assert "READY   TRUE" in text and "Booted" in text
    assert "TRUE (Booted)" in text  # the Events section
    assert "Jobs:  <none>" in text


def test_errors_name_each_field_once() -> None:
    answer = {
        "code": 422,
        "message": "metadata.name: bad label",
        "details": [
            {"field": "metadata.name", "reason": "bad label"},
            {"field": "spec.template", "reason": "Field required"},
        ],
    }
    error = error_from_answer(422, answer)
    assert error_text(error) == (
        "Error from server (Invalid): metadata.name: bad label\n  spec.template: Field required"
    )
    assert isinstance(error_from_answer(404, {"message": "not found"}), NotFound)
    missing = error_text(NotFound(404, "not found"), 'computeinstance "x"')
    assert missing == 'Error from server (NotFound): computeinstance "x" not found'
    odd = ApiError(502, "HTTP 502", [FieldError("a", "b")])
    assert error_text(odd).startswith("Error from server (InternalError): HTTP 502")
