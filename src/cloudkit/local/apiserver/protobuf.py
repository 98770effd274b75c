"""Decoding the few protobuf request bodies kubectl sends.

kubectl's typed commands (`create namespace|configmap|secret|serviceaccount|token`,
`auth can-i|whoami`) POST `application/vnd.kubernetes.protobuf` bodies and do not fall back
to JSON on 415, so the server reads those kinds (field numbers from k8s.io/api
generated.proto). Replies stay JSON: client-go accepts it because its Accept list names
application/json too.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

from cloudkit.local.apiserver.errors import ApiError

MAGIC = b"k8s\x00"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs; length-delimited values as bytes, varints as ints."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(buf, pos)
            yield number, buf[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _text(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(value: int | bytes, as_bytes: bool) -> tuple[str, str]:
    assert isinstance(value, bytes)
    key, val = "", ""
    for number, item in _fields(value):
        if number == 1:
            key = _text(item)
        elif number == 2:
            raw = item if isinstance(item, bytes) else b""
            val = base64.b64encode(raw).decode() if as_bytes else raw.decode()
    return key, val


def _owner_reference(buf: bytes) -> dict[str, Any]:
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    flags = {6: "controller", 7: "blockOwnerDeletion"}
    ref: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number in names:
            ref[names[number]] = _text(value)
        elif number in flags:
            ref[flags[number]] = bool(value)
    return ref


def _object_meta(buf: bytes) -> dict[str, Any]:
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number in strings:
            if _text(value):  # proto2 optionals arrive as empty strings
                meta[strings[number]] = _text(value)
        elif number in (11, 12):
            key, val = _entry(value, as_bytes=False)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = val
        elif number == 13 and isinstance(value, bytes):
            meta.setdefault("ownerReferences", []).append(_owner_reference(value))
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _config_map(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number in (2, 3):
            key, val = _entry(value, as_bytes=number == 3)
            obj.setdefault("data" if number == 2 else "binaryData", {})[key] = val
        elif number == 4:
            obj["immutable"] = bool(value)
    return obj


def _secret(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number in (2, 4):
            key, val = _entry(value, as_bytes=number == 2)
            obj.setdefault("data" if number == 2 else "stringData", {})[key] = val
        elif number == 3:
            obj["type"] = _text(value)
        elif number == 5:
            obj["immutable"] = bool(value)
    return obj


def _namespace(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number == 2 and isinstance(value, bytes):
            finalizers = [_text(v) for n, v in _fields(value) if n == 1]
            obj["spec"] = {"finalizers": finalizers} if finalizers else {}
    return obj


def _service_account(buf: bytes) -> dict[str, Any]:
    """`kubectl create serviceaccount`: metadata (1), automountServiceAccountToken (4)."""
    obj: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number == 4:
            obj["automountServiceAccountToken"] = bool(value)
    return obj


def _strings(buf: bytes, names: dict[int, str]) -> dict[str, Any]:
    return {names[n]: _text(v) for n, v in _fields(buf) if n in names and _text(v)}


def _token_request(buf: bytes) -> dict[str, Any]:
    """`kubectl create token`: spec.audiences (1), spec.expirationSeconds (4)."""
    spec: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number != 2 or not isinstance(value, bytes):
            continue
        for n, v in _fields(value):
            if n == 1:
                spec.setdefault("audiences", []).append(_text(v))
            elif n == 4 and isinstance(v, int):
                spec["expirationSeconds"] = v
    return {"spec": spec}


_RESOURCE_ATTRIBUTES = {
    1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource",
    7: "name",
}  # fmt: skip


def _access_review(buf: bytes) -> dict[str, Any]:
    """`kubectl auth can-i`: spec.resourceAttributes (1) or spec.nonResourceAttributes (2)."""
    spec: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number != 2 or not isinstance(value, bytes):
            continue
        for n, v in _fields(value):
            if n == 1 and isinstance(v, bytes):
                spec["resourceAttributes"] = _strings(v, _RESOURCE_ATTRIBUTES)
            elif n == 2 and isinstance(v, bytes):
                spec["nonResourceAttributes"] = _strings(v, {1: "path", 2: "verb"})
    return {"spec": spec}


def _rules_review(buf: bytes) -> dict[str, Any]:
    """`kubectl auth can-i --list`: spec.namespace (1)."""
    spec: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number == 2 and isinstance(value, bytes):
            spec = _strings(value, {1: "namespace"})
    return {"spec": spec}


_DECODERS: dict[tuple[str, str], Callable[[bytes], dict[str, Any]]] = {
    ("v1", "ConfigMap"): _config_map,
    ("v1", "Secret"): _secret,
    ("v1", "Namespace"): _namespace,
    ("v1", "ServiceAccount"): _service_account,
    ("authentication.k8s.io/v1", "TokenRequest"): _token_request,
    ("authentication.k8s.io/v1", "SelfSubjectReview"): lambda buf: {},
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): _access_review,
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): _rules_review,
}


def decode(raw: bytes) -> dict[str, Any]:
    """A JSON-shaped object from a Kubernetes protobuf envelope (415 for other kinds)."""
    if not raw.startswith(MAGIC):
        raise ApiError(400, "the protobuf body lacks the k8s envelope")
    try:
        api_version = kind = ""
        payload = b""
        for number, value in _fields(raw[len(MAGIC) :]):
            if number == 1 and isinstance(value, bytes):
                for n, v in _fields(value):
                    if n == 1:
                        api_version = _text(v)
                    elif n == 2:
                        kind = _text(v)
            elif number == 2 and isinstance(value, bytes):
                payload = value
        decoder = _DECODERS.get((api_version, kind))
        if decoder is None:
            raise ApiError(
                415, f"protobuf bodies are not supported for {kind}; send application/json"
            )
        obj = decoder(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"invalid protobuf body: {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}
