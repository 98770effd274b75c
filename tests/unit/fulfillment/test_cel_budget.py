"""The product's one CEL (cloudkit.cel): parse errors, evaluation errors and the cost limit."""

from __future__ import annotations

import pytest

from cloudkit.cel import COST_LIMIT, Budget, CelError, CostExceeded, compile_program, to_cel

# 20 × 20 × 20 comprehension steps: far over a small budget, cheap under the default one.
NESTED = "r.all(a, r.all(b, r.all(c, a + b + c >= 0)))"
RANGE = list(range(20))


def test_a_syntax_error_names_its_column() -> None:
    with pytest.raises(CelError, match="column"):
        compile_program("this.metadata.name ==")


def test_an_expression_over_the_length_limit_is_refused_before_parsing() -> None:
    with pytest.raises(CelError, match="longer than"):
        compile_program("1 + " * 2000 + "1")


def test_a_nested_comprehension_spends_its_budget_and_stops() -> None:
    program = compile_program(NESTED)
    budget = Budget(limit=5_000)
    with pytest.raises(CostExceeded, match="5000 steps"):
        program.run({"r": to_cel(RANGE)}, budget)
    assert budget.exceeded


def test_the_same_evaluation_costs_the_same_every_time() -> None:
    program = compile_program("r.all(a, a >= 0)")
    costs = set()
    for _ in range(3):
        budget = Budget()
        assert program.run({"r": to_cel(RANGE)}, budget)
        costs.add(budget.spent)
    assert len(costs) == 1 and costs.pop() > len(RANGE)


def test_the_default_budget_is_the_products_cost_limit() -> None:
    program = compile_program(NESTED)
    with pytest.raises(CostExceeded, match=f"{COST_LIMIT} steps"):
        program.run({"r": to_cel(RANGE)})


def test_an_evaluation_error_is_a_short_cel_error_without_the_bound_values() -> None:
    program = compile_program("this.missing == 1")
    with pytest.raises(CelError) as caught:
        program.run({"this": to_cel({"secretish": "do-not-echo"})})
    assert "do-not-echo" not in str(caught.value)
