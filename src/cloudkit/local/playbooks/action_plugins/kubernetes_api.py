"""Ansible action `kubernetes_api`: one Kubernetes API call (get, create, patch or delete) and,
if asked, a wait for its object by list + watch, run inside ansible-playbook's task worker.

Why by hand: every `kubernetes.core` task is a new Python process that imports the kubernetes
client and builds its dynamic client, ~1.3-1.7 CPU-seconds (on an idle core, its wall time too)
for a call the API server answers in milliseconds. kubernetes.core's own remedy, turbo mode,
needs the cloud.common collection, which the `ansible` package does not ship; `ansible.builtin.uri`
is a module process too, and its headers would put the token in the job's events. No library
makes Kubernetes calls from an action plugin, which runs in the worker ansible-playbook already
forked for the task: no interpreter start, no client import. So this one speaks the REST API
with the standard library (http.client, ssl) and reads the credential as kubernetes.core does
(K8S_AUTH_* variables, a kubeconfig, or the pod's ServiceAccount). It is one file because
Ansible loads an action plugin as one file: a helper module beside it would not be importable.

Parameters: `verb` (get, create, patch, delete), `api_version`, `resource` (the plural),
`namespace`, `name`; `body` (create), `json_patch` or `merge_patch` (patch), `labels` (delete
every object carrying them); `if_exists` (create: fail, ok, merge = merge-patch the body onto
the existing object), `if_missing` (fail, ok); `wait_for`: a condition `{type, status[,
reason]}` as kubernetes.core's wait_condition, or `absent`; `wait_timeout` (seconds). Result:
`object` (the object as the call or the wait last saw it; None when missing and allowed),
`deleted` (names). The wait lists, then watches from the list's resourceVersion (re-listing
on 410 Gone): it ends on the event that satisfies it, not on a poll period.

Untrusted input: names, namespaces and label values (a tenant's data) are validated against
Kubernetes' syntax and percent-encoded into the path or query; bodies are JSON-encoded; nothing
is templated. Secrets: the token and client key are read here, sent only in the Authorization
header or the TLS handshake, and never appear in a result or a message (messages name the
verb, the object, the HTTP status and the server's reason).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import ssl
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from ansible.plugins.action import ActionBase

VERBS = {"get", "create", "patch", "delete"}
REQUEST_TIMEOUT_S = 30.0
# A watch the server ends after this is simply resumed from its last resourceVersion.
WATCH_CHUNK_S = 300
USER_AGENT = "cloudkit-playbooks"

_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_API_VERSION = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


class ApiError(Exception):
    """A call that failed; the message names the call and the reason, never a credential."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _checked(field: str, value: Any, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ApiError(f"{field}: {value!r} is not {what}")
    return value


def label_selector(labels: dict[str, Any]) -> str:
    """`k=v,...` from a dict, each key and value checked so none can add a term of its own."""
    terms = []
    for key, value in sorted(labels.items()):
        prefix, _, name = str(key).rpartition("/")
        if prefix:
            _checked("labels", prefix, _NAME, "a label key prefix")
        _checked("labels", name, _LABEL_NAME, "a label name")
        _checked("labels", value, _LABEL_VALUE, "a label value")
        terms.append(f"{key}={value}")
    return ",".join(terms)


class Target:
    """Where an object lives: the collection's path and the object's name."""

    def __init__(self, args: dict[str, Any]) -> None:
        api_version = _checked(
            "api_version", args.get("api_version"), _API_VERSION, "an API version"
        )
        resource = _checked("resource", args.get("resource"), _LABEL, "a resource name")
        namespace = args.get("namespace")
        prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespace:
            namespace = _checked("namespace", namespace, _LABEL, "a namespace name")
            prefix += f"/namespaces/{urllib.parse.quote(namespace, safe='')}"
        self.collection = f"{prefix}/{resource}"
        self.what = f"{resource} {namespace + '/' if namespace else ''}"
        name = args.get("name")
        self.name = _checked("name", name, _NAME, "an object name") if name else None

    def path(self, name: str | None = None) -> str:
        name = name or self.name
        if name is None:
            raise ApiError("name: required for this call")
        return f"{self.collection}/{urllib.parse.quote(name, safe='')}"

    def describe(self, name: str | None = None) -> str:
        return f"{self.what}{name or self.name or '(all)'}"


# -- the credential: what kubernetes.core would connect with ---------------------------------

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class CredentialError(Exception):
    """The credential cannot be used; the message names the variable, file or kubeconfig entry,
    never its content."""


def _env(*names: str) -> str | None:
    """K8S_AUTH_<parameter>, then K8S_AUTH_<client field>, as kubernetes.core reads them."""
    return next(
        (os.environ[f"K8S_AUTH_{n}"] for n in names if os.environ.get(f"K8S_AUTH_{n}")), None
    )


class Settings:
    """The connection settings before they become a Cluster (kubeconfig field names)."""

    def __init__(self) -> None:
        self.server: str | None = None
        self.token: str | None = None
        self.basic: tuple[str, str] | None = None
        self.ca_file: str | None = None
        self.ca_data: str | None = None
        self.cert_file: str | None = None
        self.key_file: str | None = None
        self.cert_data: bytes | None = None
        self.key_data: bytes | None = None
        self.verify = True
        self.needs_plugin = ""  # a kubeconfig user whose credential comes from exec/auth-provider


def _kubeconfig_files(paths: str | None) -> list[Path]:
    listed = paths or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [Path(p).expanduser() for p in listed.split(os.pathsep) if p]


def _named(
    files: list[tuple[Path, dict[str, Any]]], section: str, name: str
) -> tuple[Path, dict[str, Any]]:
    """The first entry of that name across the files (kubectl's merge rule), and its file's
    directory (relative paths in it are relative to that)."""
    for path, config in files:
        for entry in config.get(section) or []:
            if entry.get("name") == name:
                return path.parent, entry.get(section[:-1]) or {}
    raise CredentialError(f"kubeconfig: no {section[:-1]} named {name!r}")


def _decoded(field: str, value: str) -> bytes:
    try:
        return base64.b64decode(value)
    except ValueError:
        raise CredentialError(f"kubeconfig: {field} is not base64") from None


def from_kubeconfig(paths: str | None, context_name: str | None) -> Settings:
    files = []
    for path in _kubeconfig_files(paths):
        try:
            files.append((path, yaml.safe_load(path.read_text()) or {}))
        except (OSError, yaml.YAMLError) as error:
            raise CredentialError(f"kubeconfig {path}: {type(error).__name__}") from None
    name = context_name or next(
        (c["current-context"] for _, c in files if c.get("current-context")), ""
    )
    if not name:
        raise CredentialError("kubeconfig: no context given and no current-context")
    _, context = _named(files, "contexts", name)
    cluster_dir, cluster = _named(files, "clusters", context.get("cluster", ""))
    user_dir, user = (
        _named(files, "users", context.get("user", "")) if context.get("user") else (Path(), {})
    )
    settings = Settings()
    settings.server = cluster.get("server")
    settings.verify = not cluster.get("insecure-skip-tls-verify", False)
    if cluster.get("certificate-authority-data"):
        settings.ca_data = _decoded(
            "certificate-authority-data", cluster["certificate-authority-data"]
        ).decode()
    elif cluster.get("certificate-authority"):
        settings.ca_file = str(cluster_dir / cluster["certificate-authority"])
    if user.get("token"):
        settings.token = user["token"]
    elif user.get("tokenFile"):
        try:
            settings.token = (user_dir / user["tokenFile"]).read_text().strip()
        except OSError as error:
            raise CredentialError(
                f"kubeconfig tokenFile {user['tokenFile']}: {error.strerror}"
            ) from None
    if user.get("username") and user.get("password"):
        settings.basic = (user["username"], user["password"])
    if user.get("client-certificate-data") and user.get("client-key-data"):
        settings.cert_data = _decoded("client-certificate-data", user["client-certificate-data"])
        settings.key_data = _decoded("client-key-data", user["client-key-data"])
    elif user.get("client-certificate") and user.get("client-key"):
        settings.cert_file = str(user_dir / user["client-certificate"])
        settings.key_file = str(user_dir / user["client-key"])
    if cluster.get("proxy-url"):
        raise CredentialError(
            f"kubeconfig cluster {context.get('cluster')!r}: proxy-url is not supported"
        )
    if user.get("exec") or user.get("auth-provider"):
        settings.needs_plugin = context.get("user", "")
    return settings


def in_cluster() -> Settings | None:
    """The pod's ServiceAccount, as the kubernetes client's in-cluster config reads it."""
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    token = SERVICE_ACCOUNT / "token"
    if not (host and port and token.is_file()):
        return None
    settings = Settings()
    settings.server = f"https://{'[' + host + ']' if ':' in host else host}:{port}"
    settings.token = token.read_text().strip()
    settings.ca_file = str(SERVICE_ACCOUNT / "ca.crt")
    return settings


def resolve_settings() -> Settings:
    """kubernetes.core's order: K8S_AUTH_HOST with an API key (or client certificate) alone;
    else K8S_AUTH_KUBECONFIG / K8S_AUTH_CONTEXT; else in-cluster, else the default kubeconfig;
    then every K8S_AUTH_* given overrides what was loaded."""
    # Settings this action cannot honour fail the job rather than being ignored: without the
    # proxy the call would go elsewhere, without impersonation it would run with more rights.
    for name in ("PROXY", "IMPERSONATE_USER", "IMPERSONATE_GROUPS"):
        if _env(name):
            raise CredentialError(f"K8S_AUTH_{name}: not supported by the kubernetes_api action")
    host, api_key = _env("HOST"), _env("API_KEY")
    cert_file, key_file = _env("CLIENT_CERT", "CERT_FILE"), _env("CLIENT_KEY", "KEY_FILE")
    username, password = _env("USERNAME"), _env("PASSWORD")
    kubeconfig, context = _env("KUBECONFIG"), _env("CONTEXT")
    if host and (api_key or (cert_file and key_file) or (username and password)):
        settings = Settings()
    elif kubeconfig or context:
        settings = from_kubeconfig(kubeconfig, context)
    else:
        settings = in_cluster() or from_kubeconfig(None, None)
    settings.server = host.rstrip("/") if host else settings.server
    if api_key:
        settings.token = api_key
    if username and password:
        settings.basic = (username, password)
    if cert_file and key_file:
        settings.cert_file, settings.key_file, settings.cert_data = cert_file, key_file, None
    if ca_file := _env("CA_CERT", "SSL_CA_CERT"):
        settings.ca_file, settings.ca_data = ca_file, None
    if (verify := _env("VALIDATE_CERTS", "VERIFY_SSL")) is not None:
        settings.verify = verify.lower() not in ("0", "false", "no")
    return settings


def _tls(settings: Settings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # What failed is named by its setting; a file's path may show, never its content.
    setting = f"CA certificate {settings.ca_file or '(certificate-authority-data)'}"
    try:
        if settings.ca_file or settings.ca_data:
            context.load_verify_locations(cafile=settings.ca_file, cadata=settings.ca_data)
        else:
            context.load_default_certs()
        if not settings.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        setting = f"client certificate {settings.cert_file or '(client-certificate-data)'}"
        if settings.cert_file and settings.key_file:
            context.load_cert_chain(settings.cert_file, settings.key_file)
        elif settings.cert_data and settings.key_data:
            # ssl loads a client key only from a file: a private directory, gone at once.
            with tempfile.TemporaryDirectory() as private:
                cert, key = Path(private, "cert"), Path(private, "key")
                cert.write_bytes(settings.cert_data)
                key.touch(mode=0o600)
                key.write_bytes(settings.key_data)
                context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        reason = error.strerror or getattr(error, "reason", None) or type(error).__name__
        raise CredentialError(f"{setting}: {reason}") from None
    return context


class Cluster:
    """The API server and how to authenticate to it. `shown` is its address for messages; the
    Authorization value is never shown (repr included)."""

    def __init__(self, settings: Settings) -> None:
        parsed = urllib.parse.urlsplit(settings.server or "")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise CredentialError(
                "the API server address (K8S_AUTH_HOST or the kubeconfig's server) "
                "is not an http(s) URL"
            )
        self.host = parsed.hostname
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.base_path = parsed.path.rstrip("/")
        self.shown = f"{parsed.scheme}://{parsed.netloc.rpartition('@')[2]}"
        self.ssl_context = _tls(settings) if parsed.scheme == "https" else None
        self.authorization: str | None = None
        if settings.token:
            self.authorization = f"Bearer {settings.token}"
        elif settings.basic:
            pair = ":".join(settings.basic).encode()
            self.authorization = f"Basic {base64.b64encode(pair).decode()}"
        elif settings.needs_plugin and not (settings.cert_file or settings.cert_data):
            raise CredentialError(
                f"kubeconfig user {settings.needs_plugin!r} gets its credential from an exec "
                "plugin or auth provider, which this action does not run: give it a token"
            )

    def __repr__(self) -> str:
        return f"Cluster({self.shown})"


def load_cluster() -> Cluster:
    return Cluster(resolve_settings())


class Client:
    """HTTP calls to one API server; a connection per call (a task makes a handful)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        host, port = self.cluster.host, self.cluster.port
        if self.cluster.ssl_context is None:
            return http.client.HTTPConnection(host, port, timeout=timeout)
        return http.client.HTTPSConnection(
            host, port, timeout=timeout, context=self.cluster.ssl_context
        )

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.cluster.authorization:
            headers["Authorization"] = self.cluster.authorization
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def call(
        self,
        method: str,
        path: str,
        what: str,
        body: Any = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """(status, decoded JSON body). Transport failures raise ApiError naming the server."""
        url = self.cluster.base_path + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        connection = self._connection(REQUEST_TIMEOUT_S)
        try:
            connection.request(method, url, data, self._headers(content_type if data else None))
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise ApiError(f"{method} {what}: {self.cluster.shown}: {error!r}") from None
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, None

    def watch(self, path: str, query: dict[str, str], what: str) -> Iterator[dict[str, Any]]:
        """The events of one watch request, until the server ends it."""
        timeout = float(query["timeoutSeconds"]) + REQUEST_TIMEOUT_S
        connection = self._connection(timeout)
        url = f"{self.cluster.base_path}{path}?{urllib.parse.urlencode({**query, 'watch': '1'})}"
        try:
            connection.request("GET", url, headers=self._headers(None))
            response = connection.getresponse()
            if response.status != 200:
                raise failure("watch", what, response.status, _json_or_none(response.read()))
            while line := response.readline():
                if line.strip():
                    yield json.loads(line)
        except (OSError, http.client.HTTPException) as error:
            raise ApiError(f"watch {what}: {self.cluster.shown}: {error!r}") from None
        finally:
            connection.close()


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def failure(verb: str, what: str, status: int, body: Any) -> ApiError:
    """The server's refusal as a message: verb, object, HTTP status, the Status's reason."""
    reason = http.client.responses.get(status, "")
    detail = body.get("message", "") if isinstance(body, dict) else ""
    return ApiError(f"{verb} {what}: HTTP {status} {reason}: {detail}".rstrip(": "), status)


# -- waiting ------------------------------------------------------------------------------------


def condition_holds(obj: dict[str, Any], condition: dict[str, Any]) -> bool:
    """kubernetes.core's wait_condition: the condition of that type has the status (and the
    reason, when one is given)."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    found = next((c for c in conditions if c.get("type") == condition["type"]), None)
    if found is None or str(found.get("status")) != str(condition.get("status", "True")):
        return False
    return not condition.get("reason") or found.get("reason") == condition["reason"]


Objects = dict[str, dict[str, Any]]


def wait_until(
    client: Client,
    target: Target,
    selector: dict[str, str],
    done: Callable[[Objects], bool],
    deadline: float,
) -> Objects:
    """List the selected objects, then follow a watch from the list's resourceVersion until
    `done` holds for the objects seen (by name); re-list when the server says 410 Gone."""
    what = target.describe()
    while True:
        status, listing = client.call("GET", target.collection, what, query=selector)
        if status != 200:
            raise failure("list", what, status, listing)
        objects = {item["metadata"]["name"]: item for item in listing.get("items") or []}
        version = listing["metadata"]["resourceVersion"]
        if done(objects):
            return objects
        expired = False
        while not expired:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(objects)
            query = {
                **selector,
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(max(1, min(WATCH_CHUNK_S, int(remaining + 0.999)))),
            }
            for event in client.watch(target.collection, query, what):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        expired = True
                        break
                    raise failure("watch", what, int(obj.get("code") or 0), obj)
                version = obj["metadata"]["resourceVersion"]
                if kind == "DELETED":
                    objects.pop(obj["metadata"]["name"], None)
                elif kind in ("ADDED", "MODIFIED"):
                    objects[obj["metadata"]["name"]] = obj
                if kind != "BOOKMARK" and done(objects):
                    return objects


# -- the action ---------------------------------------------------------------------------------


class ActionModule(ActionBase):  # type: ignore[misc]  # ansible-core ships no type hints
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        args = dict(self._task.args)
        try:
            verb = args.get("verb")
            if verb not in VERBS:
                raise ApiError(f"verb: {verb!r} is not one of {sorted(VERBS)}")
            target = Target(args)
            if self._task.check_mode and verb != "get":
                # As kubernetes.core: a check run reports the change and writes nothing.
                return {**result, "changed": True, "object": None, "deleted": []}
            cluster = load_cluster()
            outcome = Call(Client(cluster), target, args).run(verb)
        except (ApiError, CredentialError) as error:
            return {**result, "failed": True, "msg": str(error)}
        return {**result, **outcome}


class Call:
    """One task's call and wait."""

    def __init__(self, client: Client, target: Target, args: dict[str, Any]) -> None:
        self.client, self.target, self.args = client, target, args
        self.if_missing = args.get("if_missing", "fail")
        self.wait_for = args.get("wait_for")
        self.timeout = float(args.get("wait_timeout", 600))

    def run(self, verb: str) -> dict[str, Any]:
        if verb == "delete":
            return self.delete()
        outcome = {"get": self.get, "create": self.create, "patch": self.patch}[verb]()
        obj = outcome.get("object")
        if self.wait_for and obj is not None:
            outcome["object"] = self.wait(obj["metadata"]["name"])
        return outcome

    def _missing(
        self, verb: str, status: int, body: Any, name: str | None = None
    ) -> dict[str, Any]:
        if status == 404 and self.if_missing == "ok":
            return {"changed": False, "object": None}
        raise failure(verb, self.target.describe(name), status, body)

    def get(self) -> dict[str, Any]:
        what = self.target.describe()
        status, body = self.client.call("GET", self.target.path(), what)
        if status != 200:
            return self._missing("get", status, body)
        return {"changed": False, "object": body}

    def create(self) -> dict[str, Any]:
        body = self.args.get("body")
        if not isinstance(body, dict):
            raise ApiError("body: an object is required to create")
        name = _checked("body.metadata.name", (body.get("metadata") or {}).get("name"), _NAME,
                        "an object name")  # fmt: skip
        what = self.target.describe(name)
        status, created = self.client.call("POST", self.target.collection, what, body)
        if status in (200, 201):
            return {"changed": True, "object": created}
        if status == 409 and self.args.get("if_exists") == "ok":
            return {"changed": False, "object": None}
        if status == 409 and self.args.get("if_exists") == "merge":
            return self._patch(name, body, "application/merge-patch+json")
        raise failure("create", what, status, created)

    def patch(self) -> dict[str, Any]:
        if self.args.get("json_patch") is not None:
            return self._patch(None, self.args["json_patch"], "application/json-patch+json")
        if self.args.get("merge_patch") is not None:
            return self._patch(None, self.args["merge_patch"], "application/merge-patch+json")
        raise ApiError("json_patch or merge_patch: one is required to patch")

    def _patch(self, name: str | None, patch: Any, content_type: str) -> dict[str, Any]:
        what = self.target.describe(name)
        status, body = self.client.call("PATCH", self.target.path(name), what, patch, content_type)
        if status != 200:
            return self._missing("patch", status, body, name)
        return {"changed": True, "object": body}

    def delete(self) -> dict[str, Any]:
        labels = self.args.get("labels")
        if labels:
            selector = {"labelSelector": label_selector(labels)}
            what = self.target.describe()
            status, listing = self.client.call("GET", self.target.collection, what, query=selector)
            if status != 200:
                raise failure("list", what, status, listing)
            names = [item["metadata"]["name"] for item in listing.get("items") or []]
        elif self.target.name:
            selector = {"fieldSelector": f"metadata.name={self.target.name}"}
            names = [self.target.name]
        else:
            raise ApiError("name or labels: one is required to delete")
        deleted = []
        for name in names:
            what = self.target.describe(name)
            status, body = self.client.call("DELETE", self.target.path(name), what)
            if status in (200, 202):
                deleted.append(name)
            elif status != 404:
                raise failure("delete", what, status, body)
        if self.wait_for == "absent" and names:
            self._wait_absent(set(names), selector)
        return {"changed": bool(deleted), "deleted": deleted}

    def _wait_absent(self, names: set[str], selector: dict[str, str]) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            wait_until(self.client, self.target, selector, lambda seen: not names & seen.keys(),
                       deadline)  # fmt: skip
        except TimeoutError as left:
            still = sorted(names & left.args[0].keys())
            raise ApiError(
                f"wait for {self.target.describe()}: {still} still present after {self.timeout:g} s"
            ) from None

    def wait(self, name: str) -> dict[str, Any]:
        condition = self.wait_for
        if not isinstance(condition, dict) or "type" not in condition:
            raise ApiError(f"wait_for: {condition!r} is not a condition {{type, status}}")
        what = self.target.describe(name)
        selector = {"fieldSelector": f"metadata.name={name}"}

        def done(seen: Objects) -> bool:
            if name not in seen:
                raise ApiError(f"wait for {what}: it was deleted while waiting")
            return condition_holds(seen[name], condition)

        try:
            seen = wait_until(self.client, self.target, selector, done,
                              time.monotonic() + self.timeout)  # fmt: skip
        except TimeoutError as left:
            last = left.args[0].get(name, {})
            shown = (last.get("status") or {}).get("conditions")
            raise ApiError(
                f"wait for {what}: condition {condition} not met after {self.timeout:g} s "
                f"(conditions: {shown})"
            ) from None
        return seen[name]
