"""RBAC escalation prevention on plain data: whether the rules a user holds cover the rules a
Role grants or a binding hands out (kube-apiserver's `validation.Covers` and
`ConfirmNoEscalation`), and upstream's 403 wording when they do not.

Pure: the caller resolves the user's rules (`authz.grants`) and the `escalate`/`bind` verbs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cloudkit.local.apiserver.authz import Obj, UserInfo, well_formed_rules

# What the aggregationRule of a ClusterRole may gather: anything, so setting one takes
# cluster-admin rights, as upstream (`fullAuthority`).
FULL_AUTHORITY: tuple[Obj, ...] = (
    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
    {"verbs": ["*"], "nonResourceURLs": ["*"]},
)


def _atoms(rule: Obj) -> Iterator[Obj]:
    """One rule per verb × group × resource × name (or verb × URL): upstream's BreakdownRule."""
    for verb in rule.get("verbs") or []:
        for url in rule.get("nonResourceURLs") or []:
            yield {"verbs": [verb], "nonResourceURLs": [url]}
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                names = rule.get("resourceNames") or [None]
                for name in names:
                    atom: Obj = {"verbs": [verb], "apiGroups": [group], "resources": [resource]}
                    if name is not None:
                        atom["resourceNames"] = [name]
                    yield atom


def _resource_covers(owned: list[str], resource: str) -> bool:
    if "*" in owned or resource in owned:
        return True
    # "*/status" covers "pods/status".
    return "/" in resource and any(r.startswith("*/") and resource.endswith(r[1:]) for r in owned)


def _url_covers(owned: list[str], url: str) -> bool:
    return any(o == "*" or o == url or (o.endswith("*") and url.startswith(o[:-1])) for o in owned)


def _covers(owner: Obj, atom: Obj) -> bool:
    verbs = owner.get("verbs") or []
    if "*" not in verbs and atom["verbs"][0] not in verbs:
        return False
    if "nonResourceURLs" in atom:
        return _url_covers(owner.get("nonResourceURLs") or [], atom["nonResourceURLs"][0])
    groups = owner.get("apiGroups") or []
    if "*" not in groups and atom["apiGroups"][0] not in groups:
        return False
    if not _resource_covers(owner.get("resources") or [], atom["resources"][0]):
        return False
    owned_names = owner.get("resourceNames") or []
    wanted = atom.get("resourceNames") or []
    return not owned_names or (bool(wanted) and wanted[0] in owned_names)


def missing_rights(owned: Iterable[Obj], granted: Iterable[Obj]) -> list[Obj]:
    """The atomic rules of `granted` that no rule of `owned` covers (empty: no escalation)."""
    owner_rules = list(owned)
    missing = []
    for rule in well_formed_rules(list(granted)):
        missing += [a for a in _atoms(rule) if not any(_covers(o, a) for o in owner_rules)]
    return missing


def _quoted(values: list[str]) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def _compact(rules: list[Obj]) -> str:
    """Upstream's compactString: one line per rule, verbs gathered per group/resource/name."""
    verbs_of: dict[tuple[str, ...], list[str]] = {}
    for atom in rules:
        key = tuple(
            f"{field}:{v[0]}"
            for field in ("apiGroups", "resources", "resourceNames", "nonResourceURLs")
            if (v := atom.get(field))
        )
        verbs_of.setdefault(key, []).append(atom["verbs"][0])
    lines = []
    names = {"apiGroups": "APIGroups", "resources": "Resources",
             "resourceNames": "ResourceNames", "nonResourceURLs": "NonResourceURLs"}  # fmt: skip
    for key, verbs in verbs_of.items():
        parts = []
        for item in key:
            field, value = item.split(":", 1)
            parts.append(f"{names[field]}:{_quoted([value])}")
        parts.append(f"Verbs:{_quoted(verbs)}")
        lines.append("{" + ", ".join(parts) + "}")
    return "\n".join(lines)


def escalation_message(user: UserInfo, missing: list[Obj]) -> str:
    """ConfirmNoEscalation's reason (the 403's message follows `<resource> "<name>" is
    forbidden: `)."""
    return (
        f'user "{user.name}" (groups={_quoted(list(user.groups))}) is attempting to grant RBAC '
        f"permissions not currently held:\n{_compact(missing)}"
    )
