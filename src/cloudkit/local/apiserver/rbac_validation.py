"""What kube-apiserver checks of Roles, ClusterRoles and their bindings before storing them:
the shape of each field (a decoding error, 400), upstream's defaults, then its validation
(`pkg/apis/rbac/validation`, 422 naming the field). Pure, on plain dicts.

Without this a string where a list belongs would be stored, and read by the authorizer as
something else (a substring match, a wildcard).
"""

from __future__ import annotations

from typing import Any

from cloudkit.local.apiserver.errors import ApiError, Cause, invalid
from cloudkit.local.apiserver.resources import RBAC

Obj = dict[str, Any]
_RULE_LISTS = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")
_SUBJECT_FIELDS = ("kind", "apiGroup", "name", "namespace")
_ROLE_REF_FIELDS = ("apiGroup", "kind", "name")
_ROLE_KINDS = ("Role", "ClusterRole")
_BINDING_KINDS = ("RoleBinding", "ClusterRoleBinding")
_GO_TYPES = {str: "string", int: "number", float: "number", bool: "bool", list: "array",
             dict: "object", type(None): "null"}  # fmt: skip


def _json_type(value: Any) -> str:
    return _GO_TYPES.get(type(value), "value")


def _decode_error(kind: str, value: Any, go_field: str, go_type: str) -> ApiError:
    """The 400 kube-apiserver answers when the body does not decode into the Go type."""
    return ApiError(
        400,
        f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal '
        f"{_json_type(value)} into Go struct field {go_field} of type {go_type}",
    )


def _check_strings(kind: str, obj: Obj, key: str, go_field: str) -> None:
    value = obj.get(key)
    if value is None:
        return
    if not isinstance(value, list):
        raise _decode_error(kind, value, go_field, "[]string")
    for item in value:
        if not isinstance(item, str):
            raise _decode_error(kind, item, go_field, "string")


def _check_string(kind: str, obj: Obj, key: str, go_field: str) -> None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _decode_error(kind, value, go_field, "string")


def _check_role_shape(kind: str, obj: Obj) -> None:
    rules = obj.get("rules")
    if rules is None:
        return
    if not isinstance(rules, list):
        raise _decode_error(kind, rules, f"{kind}.rules", "[]v1.PolicyRule")
    for rule in rules:
        if not isinstance(rule, dict):
            raise _decode_error(kind, rule, f"{kind}.rules", "v1.PolicyRule")
        for key in _RULE_LISTS:
            _check_strings(kind, rule, key, f"PolicyRule.rules.{key}")
    aggregation = obj.get("aggregationRule")
    if aggregation is not None and not isinstance(aggregation, dict):
        raise _decode_error(kind, aggregation, f"{kind}.aggregationRule", "v1.AggregationRule")


def _check_binding_shape(kind: str, obj: Obj) -> None:
    ref = obj.get("roleRef")
    if ref is not None:
        if not isinstance(ref, dict):
            raise _decode_error(kind, ref, f"{kind}.roleRef", "v1.RoleRef")
        for key in _ROLE_REF_FIELDS:
            _check_string(kind, ref, key, f"RoleRef.roleRef.{key}")
    subjects = obj.get("subjects")
    if subjects is None:
        return
    if not isinstance(subjects, list):
        raise _decode_error(kind, subjects, f"{kind}.subjects", "[]v1.Subject")
    for subject in subjects:
        if not isinstance(subject, dict):
            raise _decode_error(kind, subject, f"{kind}.subjects", "v1.Subject")
        for key in _SUBJECT_FIELDS:
            _check_string(kind, subject, key, f"Subject.subjects.{key}")


def _go_strings(values: list[str]) -> str:
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


def _rule_causes(rule: Obj, path: str, namespaced: bool) -> list[Cause]:
    """Upstream's ValidatePolicyRule."""
    causes = []
    if not rule.get("verbs"):
        causes.append(Cause("FieldValueRequired",
                            "Required value: verbs must contain at least one value",
                            f"{path}.verbs"))  # fmt: skip
    urls = rule.get("nonResourceURLs") or []
    if urls:
        value = f"Invalid value: {_go_strings(urls)}: "
        if namespaced:
            causes.append(Cause("FieldValueInvalid",
                                value + "namespaced rules cannot apply to non-resource URLs",
                                f"{path}.nonResourceURLs"))  # fmt: skip
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            causes.append(Cause("FieldValueInvalid", value + "rules cannot apply to both "
                                "regular resources and non-resource URLs",
                                f"{path}.nonResourceURLs"))  # fmt: skip
        return causes
    if not rule.get("apiGroups"):
        causes.append(Cause("FieldValueRequired",
                            "Required value: resource rules must supply at least one api group",
                            f"{path}.apiGroups"))  # fmt: skip
    if not rule.get("resources"):
        causes.append(Cause("FieldValueRequired",
                            "Required value: resource rules must supply at least one resource",
                            f"{path}.resources"))  # fmt: skip
    return causes


def _not_supported(value: str, supported: tuple[str, ...], field: str) -> Cause:
    listed = ", ".join(f'"{s}"' for s in supported)
    return Cause(
        "FieldValueNotSupported", f'Unsupported value: "{value}": supported values: {listed}', field
    )


def _path_segment_causes(name: str, field: str) -> list[Cause]:
    """ValidateRBACName: a name that is one path segment."""
    reasons = []
    if name in (".", ".."):
        reasons.append(f"may not be '{name}'")
    for bad in ("/", "%"):
        if bad in name:
            reasons.append(f"may not contain '{bad}'")
    return [Cause("FieldValueInvalid", f'Invalid value: "{name}": {r}', field) for r in reasons]


def _subject_causes(subject: Obj, path: str, namespace_required: bool) -> list[Cause]:
    """Upstream's ValidateRoleBindingSubject."""
    causes = []
    name, kind, group = (
        subject.get("name") or "",
        subject.get("kind") or "",
        subject.get("apiGroup") or "",
    )
    if not name:
        causes.append(Cause("FieldValueRequired", "Required value", f"{path}.name"))
    if kind == "ServiceAccount":
        if group:
            causes.append(_not_supported(group, ("",), f"{path}.apiGroup"))
        if namespace_required and not subject.get("namespace"):
            causes.append(Cause("FieldValueRequired", "Required value", f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != RBAC:
            causes.append(_not_supported(group, (RBAC,), f"{path}.apiGroup"))
    else:
        causes.append(_not_supported(kind, ("ServiceAccount", "User", "Group"), f"{path}.kind"))
    return causes


def _binding_causes(kind: str, obj: Obj, old: Obj | None) -> list[Cause]:
    ref: Obj = obj.get("roleRef") or {}
    causes = []
    if ref.get("apiGroup") != RBAC:
        causes.append(_not_supported(ref.get("apiGroup") or "", (RBAC,), "roleRef.apiGroup"))
    kinds = _ROLE_KINDS if kind == "RoleBinding" else ("ClusterRole",)
    if ref.get("kind") not in kinds:
        causes.append(_not_supported(ref.get("kind") or "", kinds, "roleRef.kind"))
    if not ref.get("name"):
        causes.append(Cause("FieldValueRequired", "Required value", "roleRef.name"))
    else:
        causes += _path_segment_causes(ref["name"], "roleRef.name")
    for i, subject in enumerate(obj.get("subjects") or []):
        causes += _subject_causes(subject, f"subjects[{i}]", kind == "ClusterRoleBinding")
    if old is not None and (old.get("roleRef") or {}) != ref:
        shown = "{" + ", ".join(f"{k}: {ref.get(k, '')!s}" for k in _ROLE_REF_FIELDS) + "}"
        causes.append(Cause("FieldValueInvalid", f"Invalid value: {shown}: cannot change roleRef",
                            "roleRef"))  # fmt: skip
    return causes


def _default_binding(obj: Obj) -> None:
    """Upstream's v1 defaults: roleRef.apiGroup, and a User's or Group's apiGroup."""
    if obj.get("roleRef") is None:
        obj["roleRef"] = {}  # Go's zero RoleRef, then defaulted and refused field by field
    ref = obj["roleRef"]
    if not ref.get("apiGroup"):
        ref["apiGroup"] = RBAC
    for subject in obj.get("subjects") or []:
        if subject.get("kind") in ("User", "Group") and not subject.get("apiGroup"):
            subject["apiGroup"] = RBAC


def check(kind: str, obj: Obj, old: Obj | None) -> None:
    """Check (and default, in place) an RBAC object about to be stored; raise 400 for a
    field of the wrong type, 422 for what upstream's validation refuses."""
    name = str((obj.get("metadata") or {}).get("name", ""))
    causes: list[Cause] = []
    if kind in _ROLE_KINDS:
        _check_role_shape(kind, obj)
        for i, rule in enumerate(obj.get("rules") or []):
            causes += _rule_causes(rule, f"rules[{i}]", kind == "Role")
    elif kind in _BINDING_KINDS:
        _check_binding_shape(kind, obj)
        _default_binding(obj)
        causes += _binding_causes(kind, obj, old)
    if causes:
        raise invalid(kind, RBAC, name, causes)
