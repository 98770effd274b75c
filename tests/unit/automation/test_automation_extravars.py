"""The extravars policy: launch-time variables are data (`!unsafe`), template variables not."""

from __future__ import annotations

from typing import Any

import yaml

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


def test_awkward_strings_survive_exactly() -> None:
    awkward = ["it's", 'say "hi"', "a\nb", "  padded ", "", "!unsafe", "yes", "1.5", "é ✓", "#"]
    read = read_back(extravars.document({"values": awkward}, {}))
    assert read == {unsafe("values"): [unsafe(text) for text in awkward]}


def test_a_shared_subtree_is_written_twice_not_as_an_anchor() -> None:
    shared = {"k": "v"}
    text = extravars.document({"a": shared, "b": shared}, {})
    assert "&" not in text and "*" not in text
