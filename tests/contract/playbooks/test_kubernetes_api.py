"""The playbooks' kubernetes_api action in parts: which credential it picks (as kubernetes.core
would), what it refuses, how a tenant's strings reach the URL, and its wait against the real
API server where a playbook run cannot steer it (a watch the server ends, a version the server
compacted away). The whole calls are held by the playbook tests beside this one."""

from __future__ import annotations

import base64
import importlib.util
import time
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from cloudkit.local.apiserver.main import ApiServerHandle
from tests.contract.conftest import serving

PLUGIN = Path(str(resources.files("cloudkit.local") / "playbooks")) / "action_plugins"
AUTH_VARIABLES = ("HOST", "API_KEY", "KUBECONFIG", "CONTEXT", "VERIFY_SSL", "SSL_CA_CERT",
                  "PROXY", "IMPERSONATE_USER")  # fmt: skip


def load_action() -> ModuleType:
    """The action plugin as Ansible loads it: a file beside the playbooks, not a package."""
    spec = importlib.util.spec_from_file_location("kubernetes_api", PLUGIN / "kubernetes_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


api = load_action()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AUTH_VARIABLES:
        monkeypatch.delenv(f"K8S_AUTH_{name}", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)


def kubeconfig(path: Path, *, server: str, user: dict[str, Any], **cluster: Any) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "here",
                "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def test_an_aap_credential_wins_over_a_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kubernetes.core's order: K8S_AUTH_HOST with an API key is used alone, the kubeconfig
    not even read (here it does not exist)."""
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("K8S_AUTH_HOST", "https://api.example.com:6443/")
    monkeypatch.setenv("K8S_AUTH_API_KEY", "the-token")
    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "False")
    settings = api.resolve_settings()
    assert (settings.server, settings.token, settings.verify) == (
        "https://api.example.com:6443",
        "the-token",
        False,
    )


def test_a_kubeconfig_resolves_its_files_beside_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("from-a-file\n")
    config = kubeconfig(
        tmp_path / "config",
        server="https://127.0.0.1:6443",
        user={"tokenFile": "token"},
        **{"certificate-authority": "ca.crt"},
    )
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", str(config))
    settings = api.resolve_settings()
    assert settings.token == "from-a-file"
    assert settings.ca_file == str(tmp_path / "ca.crt")
    assert settings.verify is True


def test_kubeconfig_files_merge_as_kubectl_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KUBECONFIG=a:b: the first file naming an entry wins."""
    first = kubeconfig(tmp_path / "a", server="https://first:1", user={"token": "first"})
    second = kubeconfig(tmp_path / "b", server="https://second:1", user={"token": "second"})
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    monkeypatch.setattr(api, "in_cluster", lambda: None)  # not a pod, whatever runs the tests
    settings = api.resolve_settings()
    assert (settings.server, settings.token) == ("https://first:1", "first")


@pytest.mark.parametrize("variable", ["PROXY", "IMPERSONATE_USER"])
def test_settings_it_cannot_honour_fail_rather_than_being_ignored(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8S_AUTH_HOST", "https://api.example.com")
    monkeypatch.setenv("K8S_AUTH_API_KEY", "the-token")
    monkeypatch.setenv(f"K8S_AUTH_{variable}", "x")
    with pytest.raises(api.CredentialError, match=f"K8S_AUTH_{variable}"):
        api.resolve_settings()


def test_an_exec_credential_is_named_not_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "exec-argument-secret"
    user = {"exec": {"command": "get-token", "args": [secret]}}
    config = kubeconfig(tmp_path / "config", server="https://127.0.0.1:1", user=user)
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", str(config))
    with pytest.raises(api.CredentialError) as raised:
        api.load_cluster()
    assert "'u'" in str(raised.value) and secret not in str(raised.value)


def test_a_cluster_never_shows_its_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_AUTH_HOST", "https://user:password@api.example.com:6443")
    monkeypatch.setenv("K8S_AUTH_API_KEY", "the-token")
    cluster = api.load_cluster()
    assert cluster.authorization == "Bearer the-token"
    shown = f"{cluster!r} {cluster.shown}"
    assert "the-token" not in shown and "password" not in shown
    assert cluster.shown == "https://api.example.com:6443"


def test_a_client_key_from_the_kubeconfig_is_loaded_and_not_left_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ssl reads a client key only from a file: it must be gone once loaded."""
    written: list[Path] = []

    def spy(context: Any, cert: Path, key: Path) -> None:
        written.append(Path(key))
        raise api.ssl.SSLError("not a key")  # the data below is no key; the spy sees the path

    monkeypatch.setattr(api.ssl.SSLContext, "load_cert_chain", spy)
    data = base64.b64encode(b"not a real key").decode()
    user = {"client-certificate-data": data, "client-key-data": data}
    config = kubeconfig(tmp_path / "config", server="https://127.0.0.1:1", user=user)
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", str(config))
    with pytest.raises(api.CredentialError, match="client certificate"):
        api.load_cluster()
    assert written and not written[0].exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "../../namespaces/kube-system"),
        ("name", "UPPER"),
        ("namespace", "a/b"),
        ("resource", "virtualmachines?watch=1"),
        ("api_version", "kubevirt.io/v1/../../x"),
    ],
)
def test_a_tenants_string_cannot_change_the_path(field: str, value: str) -> None:
    args = {"api_version": "v1", "resource": "namespaces", "name": "ok", field: value}
    with pytest.raises(api.ApiError, match=rf"^{field}: "):
        api.Target(args)


def test_paths_are_built_from_checked_parts() -> None:
    target = api.Target(
        {"api_version": "kubevirt.io/v1", "resource": "virtualmachines", "namespace": "t-1",
         "name": "vm.one"}
    )  # fmt: skip
    assert target.path() == "/apis/kubevirt.io/v1/namespaces/t-1/virtualmachines/vm.one"
    core = api.Target({"api_version": "v1", "resource": "namespaces", "name": "t-1"})
    assert core.path() == "/api/v1/namespaces/t-1"


def test_a_label_value_cannot_add_a_term_to_the_selector() -> None:
    key = "cloudkit.openshift.io/computeinstance"
    assert api.label_selector({key: "vm-1"}) == f"{key}=vm-1"
    for value in ("vm-1,other=x", "vm-1 in (a)", "vm!"):
        with pytest.raises(api.ApiError, match=r"^labels: "):
            api.label_selector({key: value})


@pytest.mark.parametrize(
    ("conditions", "wanted", "holds"),
    [
        ([{"type": "Ready", "status": "True"}], {"type": "Ready", "status": "True"}, True),
        ([{"type": "Ready", "status": "False"}], {"type": "Ready", "status": "True"}, False),
        ([], {"type": "Ready", "status": "True"}, False),
        (
            [{"type": "Ready", "status": "False", "reason": "VMINotExists"}],
            {"type": "Ready", "status": "False", "reason": "VMINotExists"},
            True,
        ),
        (
            [{"type": "Ready", "status": "False", "reason": "Starting"}],
            {"type": "Ready", "status": "False", "reason": "VMINotExists"},
            False,
        ),
    ],
)
def test_wait_conditions_read_as_kubernetes_core_reads_them(
    conditions: list[dict[str, str]], wanted: dict[str, str], holds: bool
) -> None:
    assert api.condition_holds({"status": {"conditions": conditions}}, wanted) is holds


# -- the wait, against the real API server ------------------------------------------------------

CONFIGMAPS = {"api_version": "v1", "resource": "configmaps", "namespace": "default"}
MERGE = "application/merge-patch+json"


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


def labelled_ready(name: str) -> Any:
    def done(seen: dict[str, Any]) -> bool:
        labels = (seen.get(name) or {}).get("metadata", {}).get("labels") or {}
        return bool(labels.get("ready") == "yes")

    return done


def connect(server: ApiServerHandle, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The action's client with the credential the playbooks get from the local stack."""
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", str(server.kubeconfig))
    client = api.Client(api.load_cluster())
    status, _ = client.call("POST", api.Target(CONFIGMAPS).collection, "cm", configmap("waited"))
    assert status == 201
    return client


@pytest.mark.stack
def test_a_wait_resumes_from_its_last_version_when_the_server_ends_the_watch(
    apiserver: ApiServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each watch asks the server to end it after WATCH_CHUNK_S; the change lands while no
    watch is open, and the next one, from the last version seen, still delivers it."""
    monkeypatch.setattr(api, "WATCH_CHUNK_S", 1)
    client = connect(apiserver, monkeypatch)
    target = api.Target(CONFIGMAPS)
    follow, watches = client.watch, []

    def watch(path: str, query: dict[str, str], what: str) -> Any:
        watches.append(query["resourceVersion"])
        if len(watches) == 2:  # the first watch has ended: change the object between watches
            patch = {"metadata": {"labels": {"ready": "yes"}}}
            assert client.call("PATCH", target.path("waited"), "cm", patch, MERGE)[0] == 200
        yield from follow(path, query, what)

    monkeypatch.setattr(client, "watch", watch)
    selector = {"fieldSelector": "metadata.name=waited"}
    seen = api.wait_until(
        client, target, selector, labelled_ready("waited"), time.monotonic() + 120
    )
    assert seen["waited"]["metadata"]["labels"] == {"ready": "yes"}
    assert len(watches) >= 2, watches


@pytest.mark.stack
def test_a_wait_lists_again_when_its_version_expired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compacting server answers a watch from a version it no longer keeps with 410 Gone:
    the wait lists again instead of failing."""
    with serving(tmp_path / "state", change_log_window=2) as server:
        client = connect(server, monkeypatch)
        target = api.Target(CONFIGMAPS)
        request, lists = client.call, []

        def call(method: str, path: str, what: str, *args: Any, **kwargs: Any) -> Any:
            answer = request(method, path, what, *args, **kwargs)
            if method == "GET" and path == target.collection:
                lists.append(answer[1]["metadata"]["resourceVersion"])
                if len(lists) == 1:  # after the wait's first list: more changes than kept
                    for i in range(4):
                        assert request("POST", path, "cm", configmap(f"other-{i}"))[0] == 201
                    patch = {"metadata": {"labels": {"ready": "yes"}}}
                    assert request("PATCH", target.path("waited"), "cm", patch, MERGE)[0] == 200
            return answer

        monkeypatch.setattr(client, "call", call)
        selector = {"fieldSelector": "metadata.name=waited"}
        deadline = time.monotonic() + 120
        seen = api.wait_until(client, target, selector, labelled_ready("waited"), deadline)
    assert seen["waited"]["metadata"]["labels"] == {"ready": "yes"}
    assert len(lists) == 2, lists
