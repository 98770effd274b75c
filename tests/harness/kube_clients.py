"""The synchronous Kubernetes Python client as its users drive it, typed where its annotations lie.

The generated client annotates request bodies as model classes (`V1Namespace`, `V1Role`…) yet
sends any JSON-able value as it is (`ApiClient.sanitize_for_serialization`): users pass dicts,
and so do the tests. Fields the server always fills (a TokenRequest's token, an object's
metadata) are annotated Optional, and the config helpers and `Watch` carry no annotations at
all. These helpers say so once, so mypy checks everything else in the tests that use the client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from kubernetes import config, dynamic, watch
from kubernetes.client import ApiClient

T = TypeVar("T")


def api_client(kubeconfig: Path | str) -> ApiClient:
    """A client on a kubeconfig (`new_client_from_config` is unannotated)."""
    made = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return cast(ApiClient, made)


def dynamic_client(client: ApiClient) -> dynamic.DynamicClient:
    """The dynamic client over `client` (its constructor is unannotated)."""
    return dynamic.DynamicClient(client)  # type: ignore[no-untyped-call]


def body(manifest: Mapping[str, Any]) -> Any:
    """A dict request body where the annotations name a model class (the client sends both)."""
    return manifest


def filled(value: T | None, what: str = "the field") -> T:
    """A value the annotations call Optional that the server always fills."""
    assert value is not None, f"{what} was not filled in by the server"
    return value


def json_object(value: object) -> dict[str, Any]:
    """A custom object as the client returns it: a dict, annotated `object`."""
    assert isinstance(value, dict), f"not a JSON object: {value!r}"
    return value


class Watch:
    """`kubernetes.watch.Watch`, annotated (the module has no annotations)."""

    def __init__(self) -> None:
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]

    def stream(
        self, list_call: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """The events of `list_call(*args, watch=True, **kwargs)`, each a dict."""
        events = self._watch.stream(list_call, *args, **kwargs)  # type: ignore[no-untyped-call]
        return cast(Iterator[dict[str, Any]], events)

    def stop(self) -> None:
        self._watch.stop()  # type: ignore[no-untyped-call]
