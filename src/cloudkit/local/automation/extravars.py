"""The extravars file of a job: which variables reach the playbook as data, which as templates.

Pure (no I/O): the executor writes the document where ansible-runner reads it. Ansible renders
any string variable holding Jinja when a playbook uses it, lookups and all, so a value that came
with a launch (a ComputeInstance the operator passes, for one) must be marked `!unsafe`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

UNSAFE_TAG = "!unsafe"
"""Ansible's YAML tag for a string that is data: never rendered as a template."""

EXTRAVARS_FILE = Path("env") / "extravars"
"""Where ansible-runner looks in a job's private data dir (it passes the file as `-e @...`)."""


class _Unsafe(str):
    """A string Ansible must never template: dumped with UNSAFE_TAG."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a shared sub-tree is written out twice, never as an anchor


def _represent_unsafe(dumper: yaml.SafeDumper, data: _Unsafe) -> yaml.ScalarNode:
    return dumper.represent_scalar(UNSAFE_TAG, str(data), style="'")


_Dumper.add_representer(_Unsafe, _represent_unsafe)


_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()


def _unsafe_keeps_type(text: str) -> bool:
    """Whether `!unsafe 'text'` reads back as the string `text`.

    ansible-core 2.19 builds an `!unsafe` scalar from the type its text would have unquoted:
    `!unsafe '3'` is the number 3, `!unsafe ''` is null, a date is a datetime. Such texts are
    numbers, booleans, null or timestamps: none holds a Jinja delimiter, so they go out as
    plain quoted strings instead, and every string still reaches the playbook as a string.
    """
    # types-PyYAML leaves Resolver.resolve untyped.
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return tag == _STR_TAG


def as_data(value: Any) -> Any:
    """`value` with every string in it marked unsafe, dict keys included, however deep.

    Keys too, as AWX does: ansible-core 2.19 does not template keys, older releases did.
    Numbers, booleans and null need no mark: only strings are ever rendered.
    """
    if isinstance(value, str):
        return _Unsafe(value) if _unsafe_keeps_type(value) else value
    if isinstance(value, Mapping):
        return {as_data(key): as_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_data(item) for item in value]
    return value


def document(extra_vars: Mapping[str, Any], template_vars: Mapping[str, Any]) -> str:
    """The YAML extravars file: launch-time data marked `!unsafe`, template variables not.

    AWX's default policy (ALLOW_JINJA_IN_EXTRA_VARS = "template"): a top-level variable whose
    value equals the one saved on the job template (`template_vars`) may hold Jinja, since
    only those who edit templates set it; every other variable came with a launch and reaches
    the playbook as data. A workflow's variables are launch-time variables of its node jobs:
    a node trusts only its own job template's variables.
    """
    entries: dict[Any, Any] = {}
    for name, value in extra_vars.items():
        if name in template_vars and template_vars[name] == value:
            entries[name] = value
        else:
            entries[as_data(name)] = as_data(value)
    return yaml.dump(
        entries, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True
    )
