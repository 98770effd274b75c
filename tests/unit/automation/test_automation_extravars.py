"""The extravars policy: launch-time variables are data (`!unsafe`), template variables not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import is_trusted_as_template

from cloudkit.local.automation import extravars

JINJA = "{{ lookup('ansible.builtin.pipe', 'id') }}"


class _TagLoader(yaml.SafeLoader):
    """Reads the document back with each `!unsafe` string as ("unsafe", text)."""


_TagLoader.add_constructor(
    extravars.UNSAFE_TAG,
    lambda loader, node: ("unsafe", loader.construct_scalar(node)),  # type: ignore[arg-type]
)


def read_back(text: str) -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.load(text, Loader=_TagLoader)
    return loaded


def unsafe(text: str) -> tuple[str, str]:
    return ("unsafe", text)


def test_every_launch_string_is_marked_at_every_depth_keys_included() -> None:
    launch = {
        "payload": {"spec": {"image": JINJA, JINJA: [JINJA, {"k": JINJA}, 3, True, None]}},
        "count": 2,
    }
    assert read_back(extravars.document(launch, {})) == {
        unsafe("payload"): {
            unsafe("spec"): {
                unsafe("image"): unsafe(JINJA),
                unsafe(JINJA): [unsafe(JINJA), {unsafe("k"): unsafe(JINJA)}, 3, True, None],
            }
        },
        unsafe("count"): 2,
    }


def test_template_variables_stay_templates_unless_the_launch_changed_them() -> None:
    template = {"greeting": "{{ 'hi' }}", "nested": {"a": "{{ b }}"}, "other": "{{ x }}"}
    launch = {"greeting": "{{ 'hi' }}", "nested": {"a": "{{ b }}"}, "other": JINJA}
    assert read_back(extravars.document(launch, template)) == {
        "greeting": "{{ 'hi' }}",
        "nested": {"a": "{{ b }}"},
        unsafe("other"): unsafe(JINJA),
    }


AWKWARD = ["it's", 'say "hi"', "a\nb", "  padded ", "é ✓", "#", "!unsafe", "{{ x }}", "{% if %}"]
# Texts an `!unsafe` tag would turn into another type (ansible-core 2.19 resolves the tagged
# text as if unquoted): a number, a boolean, null, a timestamp.
TYPED_LOOKING = ["", "3", "0x1f", "1.5", "yes", "off", "null", "~", "2026-11-29T22:39:38Z", "<<"]


def test_strings_reach_ansible_as_strings_and_untrusted(tmp_path: Path) -> None:
    """Read back by ansible-core's own loader, as `ansible-playbook -e @file` reads it."""
    launch = {
        "strings": AWKWARD + TYPED_LOOKING,
        "as_keys": {text: text for text in AWKWARD + TYPED_LOOKING},
        "others": [3, 1.5, True, None],
    }
    path = tmp_path / "extravars"
    path.write_text(extravars.document(launch, {"greeting": "{{ 'hi' }}"}))
    loaded = DataLoader().load_from_file(str(path), trusted_as_template=True)
    assert loaded == launch
    assert [type(text) for text in loaded["strings"]] == [_tagged_str()] * len(loaded["strings"])
    assert not any(is_trusted_as_template(text) for text in strings_in(loaded) if "{" in text)


def test_only_template_variables_are_trusted_by_ansible(tmp_path: Path) -> None:
    path = tmp_path / "extravars"
    path.write_text(extravars.document({"greeting": "{{ 'hi' }}", "x": "{{ y }}"},
                                       {"greeting": "{{ 'hi' }}"}))  # fmt: skip
    loaded = DataLoader().load_from_file(str(path), trusted_as_template=True)
    assert is_trusted_as_template(loaded["greeting"])
    assert not is_trusted_as_template(loaded["x"])


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in strings_in(key) + strings_in(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []


def _tagged_str() -> type:
    """The str subclass ansible-core's loader yields for every string it reads."""
    return type(DataLoader().load('"x"'))


def test_a_shared_subtree_is_written_twice_not_as_an_anchor() -> None:
    shared = {"k": "v"}
    text = extravars.document({"a": shared, "b": shared}, {})
    assert "&" not in text and "*" not in text
