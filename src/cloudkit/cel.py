"""CEL for the whole product: one evaluator (celpy) with one cost limit, pure and crash-free.

Used by the local API server's CRD rules (`x-kubernetes-validations`) and by the fulfillment
API's filters. Programs are parsed once per expression and cached. Every evaluation spends from
a `Budget` counted in syntax-tree nodes visited (deterministic, unlike a clock: the same
expression over the same value always costs the same), `COST_LIMIT` unless the caller says
otherwise. Values are converted to CEL types here, guided by a JSON schema when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.evaluation import CELEvalError, Evaluator

# celpy error texts embed the whole activation (every bound value); keep only the gist.
_MAX_ERROR = 200
# Nodes one evaluation may visit: a rule or a filter on one object visits tens to hundreds, a
# comprehension over a list of a hundred items a few thousand. celpy interprets a syntax tree in
# Python (~0.1 ms per node on a loaded machine), so this also bounds one evaluation's time to
# about a second. Kubernetes' per-expression cost limit plays the same role.
COST_LIMIT = 10_000
# Longer sources are refused before parsing: the parser's work grows with the text.
MAX_SOURCE = 4096


class CelError(Exception):
    """An expression that cannot be compiled or evaluated; the text is short and safe to return."""


class CostExceeded(CelError):
    """The evaluation visited more nodes than its budget allows."""


class Budget:
    """What an evaluation may spend, in syntax-tree nodes visited."""

    def __init__(self, limit: int = COST_LIMIT) -> None:
        self.limit = limit
        self.spent = 0

    def spend(self) -> None:
        self.spent += 1
        if self.spent > self.limit:
            raise CostExceeded(f"evaluation cost limit exceeded ({self.limit} steps)")

    @property
    def exceeded(self) -> bool:
        return self.spent > self.limit


class _MeteredEvaluator(Evaluator):
    """celpy's tree interpreter, charging one step per node (macros' sub-evaluators too)."""

    def __init__(self, ast: lark.Tree[Any], activation: Any, budget: Budget) -> None:
        super().__init__(ast, activation=activation)
        self.budget = budget

    def _visit_tree(self, tree: lark.Tree[Any]) -> Any:
        self.budget.spend()
        return super()._visit_tree(tree)

    def sub_evaluator(self, ast: lark.Tree[Any]) -> Evaluator:
        return _MeteredEvaluator(ast, self.activation, self.budget)


@dataclass(frozen=True)
class Program:
    """A parsed expression, ready to evaluate many times."""

    source: str
    runner: Any  # celpy.InterpretedRunner: its AST and base activation

    def run(self, activation: Mapping[str, Any], budget: Budget | None = None) -> Any:
        """The expression's value (celpy types) for these variables; CelError when it fails."""
        budget = budget if budget is not None else Budget()
        evaluator = _MeteredEvaluator(self.runner.ast, self.runner.new_activation(), budget)
        try:
            result = evaluator.evaluate(dict(activation))
        except CostExceeded:
            raise
        except Exception as exc:  # celpy raises several unrelated error types
            raise CelError(short_error(exc)) from None
        # celpy folds some errors into values; a spent budget may hide behind one of them.
        if budget.exceeded:
            raise CostExceeded(f"evaluation cost limit exceeded ({budget.limit} steps)")
        if isinstance(result, CELEvalError | Exception):
            raise CelError(short_error(result))
        return result


@lru_cache(maxsize=1)
def _env() -> celpy.Environment:
    return celpy.Environment()


def short_error(exc: BaseException) -> str:
    """The first useful line of a celpy error, without the activation it embeds."""
    text = str(exc.args[0]) if exc.args else str(exc)
    text = text.split(" (in activation", 1)[0].strip()
    return text[:_MAX_ERROR] or type(exc).__name__


def _parse_detail(exc: Exception) -> str:
    """celpy parse errors are the source with a caret line under the offending column."""
    lines = short_error(exc).splitlines()
    if len(lines) >= 2 and lines[-1].strip() == "^":
        return f"syntax error at column {lines[-1].index('^') + 1}"
    return " ".join(" ".join(lines).split())[:_MAX_ERROR]


@lru_cache(maxsize=512)
def compile_program(source: str) -> Program:
    """Parse once; CelError naming the column of a syntax error."""
    if len(source) > MAX_SOURCE:
        raise CelError(f"expression longer than {MAX_SOURCE} characters")
    env = _env()
    try:
        return Program(source, env.program(env.compile(source)))
    except Exception as exc:  # celpy raises several unrelated error types
        raise CelError(f"compilation failed: {_parse_detail(exc)}") from None


def _timestamp(text: str) -> Any:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return celtypes.StringType(text)
    return celtypes.TimestampType(parsed)


def to_cel(value: Any, schema: dict[str, Any] | None = None) -> Any:
    """Converts a JSON value to celpy types, guided by its schema node when there is one.

    CEL refuses to compare an int with a double (`type: number` values become doubles) and
    treats `format: date-time` strings as timestamps, as Kubernetes does.
    """
    schema = schema or {}
    kind = schema.get("type")
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int) and kind == "number":
        return celtypes.DoubleType(float(value))
    if isinstance(value, str) and kind == "string" and schema.get("format") == "date-time":
        return _timestamp(value)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        extra = extra if isinstance(extra, dict) else None
        # As in Kubernetes' CEL, a null property of an object (not of a map) is absent:
        # has(self.f) is false for `f: null`, so null cannot get around a removal rule.
        return celtypes.MapType(
            {
                celtypes.StringType(k): to_cel(v, props.get(k, extra))
                for k, v in value.items()
                if v is not None or not props
            }
        )
    if isinstance(value, list):
        items = schema.get("items")
        items = items if isinstance(items, dict) else None
        return celtypes.ListType([to_cel(v, items) for v in value])
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    return celtypes.StringType(str(value))
