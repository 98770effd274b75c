"""Facts the docs state that the code can contradict, read from the code (variables, reasons).

One reader per fact, shared by every test that checks a document (the README's configuration
table, docs/operator-guide.md, docs/troubleshooting.md), so two documents can never be checked
against two different readings of the code. The readers parse source (regular expressions,
the AST) or import constants; they never run the operator.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from cloudkit.api.jobs import JobState, JobType
from cloudkit.api.models import ConditionType
from cloudkit.operator.metrics import OperatorMetrics
from cloudkit.operator.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src" / "cloudkit"
OPERATOR = SRC / "operator"


# --- environment variables ----------------------------------------------------------------------


class _RecordingEnvironment(Mapping[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._given = dict(values)
        self.read: set[str] = set(values)

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._given[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.read.add(name)
        return name in self._given

    def __iter__(self) -> Iterator[str]:
        return iter(self._given)

    def __len__(self) -> int:
        return len(self._given)


def _read_by_settings() -> set[str]:
    """Names load_settings looks up, recorded while it reads each provider's environment.

    Recorded rather than parsed: settings.py builds names (prefixes, per-field suffixes) that
    no pattern over its text finds reliably.
    """
    read: set[str] = set()
    for provider in ("aap", "eda"):
        environment = _RecordingEnvironment({"CLOUDKIT_PROVISIONING_PROVIDER": provider})
        # Nothing else is set: the problems are expected, the reads are what counts.
        with contextlib.suppress(SettingsError):
            load_settings(environment)
        read |= environment.read
    return read


def _spelled_in_operator() -> set[str]:
    """Names the operator's modules spell out as strings (main.py reads the log level)."""
    names: set[str] = set()
    for module in OPERATOR.glob("*.py"):
        for name in re.findall(r'"([A-Z][A-Z0-9_]*)"', module.read_text()):
            names.add(name)
    return names


def variables_read_by_operator() -> set[str]:
    """Every CLOUDKIT_* variable the operator reads."""
    spelled = {n for n in _spelled_in_operator() if n.startswith("CLOUDKIT_") and n[-1] != "_"}
    return {n for n in _read_by_settings() if n.startswith("CLOUDKIT_")} | spelled


def other_environment_read_by_operator() -> set[str]:
    """Variables outside CLOUDKIT_* the operator reads itself (os.environ, or in settings)."""
    pattern = r'environ(?:\.get\(|\[)"([A-Z_][A-Z0-9_]*)"'
    names = {n for module in OPERATOR.glob("*.py") for n in re.findall(pattern, module.read_text())}
    names |= _read_by_settings()
    return {name for name in names if not name.startswith("CLOUDKIT_")}


# --- metrics ------------------------------------------------------------------------------------


def metric_names() -> set[str]:
    """The operator's metric families as Prometheus exposes them (counters with _total)."""
    registry = CollectorRegistry()
    OperatorMetrics(registry)
    exposed: set[str] = set()
    for family in registry.collect():
        exposed.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return exposed


# --- reasons of events and conditions -----------------------------------------------------------

REASON_SOURCES = (
    *sorted((SRC / "lifecycle").glob("*.py")),
    *sorted(OPERATOR.glob("*.py")),
    *sorted((SRC / "providers").rglob("*.py")),
    SRC / "local" / "stack" / "strays.py",
)
"""Where the operator (and the local stack's report of unwatched instances) names reasons."""

PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "outcome.job_type.value.capitalize()": tuple(t.value.capitalize() for t in JobType),
    "job_type.value.capitalize()": tuple(t.value.capitalize() for t in JobType),
    # step.py records an Event only when a job ends or its state is lost.
    "job.state.value": tuple(s.value for s in JobState if s.terminal or s is JobState.UNKNOWN),
}
"""f-string parts of reasons and what they can be; a new placeholder must be added here."""


class Unresolved(Exception):
    """A reason the reader cannot turn into words: teach the reader, do not skip it."""


@dataclass(frozen=True, slots=True)
class Reason:
    name: str
    condition: str | None
    """The condition type it is the reason of; None for an Event reason."""
    where: str


class _Module:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.parents: dict[ast.AST, ast.AST] = {
            child: node for node in ast.walk(self.tree) for child in ast.iter_child_nodes(node)
        }
        self.constants = {
            target.id: node.value.value
            for node in self.tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }

    def where(self, node: ast.AST) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path.name
        return f"{shown}:{getattr(node, 'lineno', '?')}"

    def function_of(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node
        return None

    def calls_of(self, name: str) -> Iterator[ast.Call]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and _called_name(node) == name:
                yield node

    def resolve(self, expr: ast.expr) -> set[str]:
        """Every string `expr` can be, or Unresolved."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.JoinedStr):
            choices = [self._fstring_part(part) for part in expr.values]
            return {"".join(parts) for parts in itertools.product(*choices)}
        if isinstance(expr, ast.IfExp):
            return self.resolve(expr.body) | self.resolve(expr.orelse)
        if isinstance(expr, ast.Name):
            if expr.id in self.constants:
                return {self.constants[expr.id]}
            return self._through_callers(expr)
        raise Unresolved(f"{self.where(expr)}: {ast.unparse(expr)}")

    def _fstring_part(self, part: ast.expr) -> tuple[str, ...]:
        if isinstance(part, ast.Constant):
            return (str(part.value),)
        assert isinstance(part, ast.FormattedValue)
        source = ast.unparse(part.value)
        if source not in PLACEHOLDERS:
            raise Unresolved(f"{self.where(part)}: placeholder {{{source}}} (add to PLACEHOLDERS)")
        return PLACEHOLDERS[source]

    def _through_callers(self, name: ast.Name) -> set[str]:
        """A parameter: whatever the function's callers in this module pass for it."""
        function = self.function_of(name)
        params = [a.arg for a in function.args.args] if function is not None else []
        if function is None or name.id not in params:
            raise Unresolved(f"{self.where(name)}: {name.id}")
        index = params.index(name.id)
        if params and params[0] in {"self", "cls"}:
            index -= 1
        values: set[str] = set()
        for call in self.calls_of(function.name):
            if function is self.function_of(call):
                continue  # its own recursion passes the parameter on
            arg = _argument(call, index, name.id)
            if arg is not None:
                values |= self.resolve(arg)
        if not values:
            raise Unresolved(f"{self.where(name)}: {name.id} has no caller in this module")
        return values


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _argument(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return call.args[index] if 0 <= index < len(call.args) else None


def _condition_type(expr: ast.expr) -> str:
    if isinstance(expr, ast.Attribute) and ast.unparse(expr.value) == "ConditionType":
        return ConditionType[expr.attr].value
    raise Unresolved(f"condition type {ast.unparse(expr)}")


def _reasons_in(module: _Module) -> Iterator[Reason]:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Dict):
            yield from _raw_condition(module, node)
            continue
        if not isinstance(node, ast.Call):
            continue
        called = _called_name(node)
        where = module.where(node)
        if called == "set_condition":
            condition = _condition_type(node.args[1])
            reason = _argument(node, 3, "reason")
            assert reason is not None, where
            for name in module.resolve(reason):
                yield Reason(name, condition, where)
        elif called == "event" and ast.unparse(node.func) == "step.event":
            # Step.event(type, reason, message): the lifecycle core's only way to an Event.
            for name in module.resolve(node.args[1]):
                yield Reason(name, None, where)
        elif called in {"RecordEvent", "instance_event"}:
            reason = _argument(node, 1, "reason")
            assert reason is not None, where
            if _passed_on(module, reason):
                continue  # Step.event() and Kube.record_event() forward a reason named elsewhere
            for name in module.resolve(reason):
                yield Reason(name, None, where)


def _passed_on(module: _Module, reason: ast.expr) -> bool:
    """A reason that is a parameter or an attribute: its value comes from a call site."""
    if isinstance(reason, ast.Attribute):
        return True
    return isinstance(reason, ast.Name) and reason.id not in module.constants


def _raw_condition(module: _Module, node: ast.Dict) -> Iterator[Reason]:
    """A condition written as a dict (the operator's report of an unreadable instance)."""
    fields = {
        key.value: value
        for key, value in zip(node.keys, node.values, strict=True)
        if isinstance(key, ast.Constant)
    }
    if {"type", "reason"} <= fields.keys():
        (condition,) = module.resolve(fields["type"])
        for name in module.resolve(fields["reason"]):
            yield Reason(name, condition, module.where(node))


def reasons_in_source(path: Path) -> set[Reason]:
    """The reasons one module can write."""
    return set(_reasons_in(_Module(path)))


def reasons() -> set[Reason]:
    """Every event reason and (condition, reason) pair the code can write."""
    found: set[Reason] = set()
    for path in REASON_SOURCES:
        found |= reasons_in_source(path)
    return found


def event_reasons() -> set[str]:
    return {r.name for r in reasons() if r.condition is None}


def condition_reasons() -> set[tuple[str, str]]:
    return {(r.condition, r.name) for r in reasons() if r.condition is not None}


# --- job messages -------------------------------------------------------------------------------

MESSAGE_SOURCES = (
    *sorted((SRC / "lifecycle").glob("*.py")),
    *sorted((SRC / "providers").rglob("*.py")),
)
"""Where the words of status.provisionJob/deprovisionJob.message come from."""

_ERRORS = frozenset(
    {
        "ProviderError",
        "ProviderInvalidResponse",
        "ProviderNotAllowed",
        "ProviderNotFound",
        "ProviderRateLimited",
        "ProviderUnauthorized",
        "ProviderUnavailable",
    }
)
"""A provider error's message ends up in the job message ("Failed to trigger …: <error>")."""
_MESSAGE_ARGUMENT = {
    "JobReading": 2,
    "LaunchResult": 2,
    "DeprovisionResult": -1,
    "record_intent": -1,
}
"""Calls whose `message` (keyword, or this positional index) is a job message."""
_MESSAGE_LOCALS = {"text": SRC / "lifecycle", "what": SRC / "providers"}
"""Local names a job message is built in before use, and where (the core's `what` in
deprovision.py is an event's words, not a job's)."""
MIN_FRAGMENT = 8
"""Shorter literal pieces (" job", ": ") say nothing a reader would search for."""


def _message_expression(module: _Module, node: ast.AST) -> ast.expr | None:
    if isinstance(node, ast.Call):
        called = _called_name(node)
        if called in _ERRORS:
            return node.args[0] if node.args else None
        if called in _MESSAGE_ARGUMENT:
            return _argument(node, _MESSAGE_ARGUMENT[called], "message")
    if isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Attribute) and target.attr == "message":
                return node.value
            home = _MESSAGE_LOCALS.get(target.id) if isinstance(target, ast.Name) else None
            if home is not None and module.path.is_relative_to(home):
                return node.value
    return None


def _literal_pieces(module: _Module, expr: ast.expr) -> Iterator[str]:
    """The fixed words of a message expression (placeholders dropped, constants followed)."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        yield expr.value
    elif isinstance(expr, ast.JoinedStr):
        for part in expr.values:
            if isinstance(part, ast.Constant):
                yield str(part.value)
            elif isinstance(part, ast.FormattedValue):
                yield from _literal_pieces(module, part.value)
    elif isinstance(expr, ast.IfExp):
        yield from _literal_pieces(module, expr.body)
        yield from _literal_pieces(module, expr.orelse)
    elif isinstance(expr, ast.BinOp):
        yield from _literal_pieces(module, expr.left)
        yield from _literal_pieces(module, expr.right)
    elif isinstance(expr, ast.BoolOp):
        for value in expr.values:
            yield from _literal_pieces(module, value)
    elif isinstance(expr, ast.Name) and expr.id in module.constants:
        yield module.constants[expr.id]


def job_message_fragments() -> dict[str, str]:
    """Fixed words of every job message the operator can write → where they are written."""
    fragments: dict[str, str] = {}
    for path in MESSAGE_SOURCES:
        module = _Module(path)
        for node in ast.walk(module.tree):
            expr = _message_expression(module, node)
            if expr is None:
                continue
            for piece in _literal_pieces(module, expr):
                words = piece.strip(" :;,")
                if words.startswith("(") and words.endswith(")"):
                    words = words[1:-1]
                if len(words) >= MIN_FRAGMENT:
                    fragments.setdefault(words, module.where(node))
    return fragments
