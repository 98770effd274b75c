"""Names the documents use (variables, resource names, metrics, extra vars, template names,
phases) exist in the code, so a rename in the code cannot leave a guide pointing at nothing."""

from __future__ import annotations

import re

import yaml

from cloudkit.api import names
from cloudkit.api.config_version import config_version
from cloudkit.api.models import ComputeInstanceSpec, Phase
from cloudkit.providers.aap.wire import launch_extra_vars
from cloudkit.tenant.config import CONFIG_ENV
from tests.unit.docs.code_facts import (
    condition_reasons,
    event_reasons,
    metric_names,
    variables_read_by_operator,
)
from tests.unit.docs.doc_text import DOCS, ROOT, code_names, section, table_rows

DOCUMENTS = (*sorted(DOCS.rglob("*.md")), ROOT / "README.md")
UPSTREAM_ONLY: set[str] = set()
"""Upstream variables docs/migration.md names as not read by cloudkit."""
RESOURCE_NAMES = {
    value
    for key, value in vars(names).items()
    if key.isupper() and isinstance(value, str) and value.startswith(f"{names.PREFIX}/")
}


def _everywhere(pattern: str) -> dict[str, set[str]]:
    """Each match of `pattern` in the documents → the documents it is in."""
    found: dict[str, set[str]] = {}
    for document in DOCUMENTS:
        for match in re.findall(pattern, document.read_text()):
            found.setdefault(match, set()).add(str(document.relative_to(ROOT)))
    return found


def _read_by_benchmarks() -> set[str]:
    """CLOUDKIT_* variables a benchmark script reads (a diagnosis its document explains)."""
    pattern = r'environ(?:\.get\(|\[)"(CLOUDKIT_[A-Z0-9_]*[A-Z0-9])"'
    return {
        name
        for script in (ROOT / "benchmarks").rglob("*.py")
        for name in re.findall(pattern, script.read_text())
    }


def test_every_variable_named_in_a_document_is_read() -> None:
    named = _everywhere(r"\bCLOUDKIT_[A-Z0-9_]*[A-Z0-9]\b")
    read = variables_read_by_operator()
    assert UPSTREAM_ONLY.isdisjoint(read), "now read: update docs/migration.md"
    # The tenant's CLI reads its own (the login state's file), the benchmarks theirs.
    known = read | UPSTREAM_ONLY | {CONFIG_ENV} | _read_by_benchmarks()
    unknown = {name: where for name, where in named.items() if name not in known}
    assert unknown == {}, "documents name variables the operator does not read"


def test_every_label_annotation_and_finalizer_named_in_a_document_exists() -> None:
    named = _everywhere(rf"\b{re.escape(names.PREFIX)}/[a-z][a-z-]*[a-z]\b")
    unknown = {name: where for name, where in named.items() if name not in RESOURCE_NAMES}
    assert RESOURCE_NAMES, "no names found in cloudkit.api.names"
    assert unknown == {}, "documents name labels, annotations or finalizers the code lacks"


def test_every_cloudkit_metric_named_in_a_document_is_exported() -> None:
    variables = set(launch_extra_vars({}, "id"))
    named = _everywhere(r"\bcloudkit_[a-z_]*[a-z]\b")
    unknown = {n: where for n, where in named.items() if n not in metric_names() | variables}
    assert unknown == {}, "documents name cloudkit_* metrics the operator does not export"


def _key_paths(block: str) -> set[str]:
    """Dotted paths of the keys of a YAML block written with two-space indents."""
    paths: set[str] = set()
    parents: list[str] = []
    for line in block.splitlines():
        match = re.match(r"( *)([a-z_]+):", line)
        if match:
            depth = len(match.group(1)) // 2
            parents = [*parents[:depth], match.group(2)]
            paths.add(".".join(parents))
    return paths


def _sent_paths(value: dict[str, object], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for key, inner in value.items():
        path = f"{prefix}{key}"
        paths.add(path)
        if isinstance(inner, dict) and key != "payload":  # the payload is the instance
            paths |= _sent_paths(inner, f"{path}.")
    return paths


def test_the_launch_variables_in_the_aap_guide_are_the_ones_sent() -> None:
    guide = section((DOCS / "wiring-aap.md").read_text(), "## The two job templates")
    block = guide.split("```yaml\nansible_eda:", 1)[1].split("```", 1)[0]
    sent = launch_extra_vars({"kind": "ComputeInstance"}, "uid-provision-1")
    assert _key_paths("ansible_eda:" + block) == _sent_paths(sent)


def test_the_template_names_in_the_aap_guide_are_the_deployments() -> None:
    deployment = yaml.safe_load((ROOT / "deploy" / "operator" / "deployment.yaml").read_text())
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    defaults = {item["name"]: item.get("value") for item in env}
    guide = section((DOCS / "wiring-aap.md").read_text(), "## The two job templates")
    for variable in ("CLOUDKIT_AAP_PROVISION_TEMPLATE", "CLOUDKIT_AAP_DEPROVISION_TEMPLATE"):
        assert f"`{defaults[variable]}`" in guide, variable


def test_the_migration_notes_state_the_phases_and_the_config_version_of_the_code() -> None:
    notes = (DOCS / "migration.md").read_text()
    first_line = section(notes, "## Phases").strip().splitlines()[0]
    assert code_names(first_line) == {phase.value for phase in Phase}
    spec = ComputeInstanceSpec.model_validate({"templateID": "sample_template"})
    assert f'`{{"templateID":"sample_template"}}` → `{config_version(spec)}`' in notes


def test_the_migration_notes_list_the_conditions_and_events_the_code_writes() -> None:
    notes = (DOCS / "migration.md").read_text()
    documented = {
        (condition, reason)
        for row in table_rows(section(notes, "## Conditions"))
        for condition in code_names(row[0])
        for reason in code_names(row[2])
    }
    assert documented == condition_reasons()
    events = code_names(section(notes, "## Events").replace("<State>", "Pending"))
    written = {r for r in event_reasons() if r != "NotWatched"}  # the local stack's, not ours
    collapsed = {
        re.sub(r"Job(Waiting|Running|Succeeded|Failed|Canceled|Unknown)$", "JobPending", r)
        for r in written
    }
    assert events == collapsed
