"""The playbooks' kubernetes_api action, its pure parts: which credential it picks (as
kubernetes.core would), what it refuses, and how a tenant's strings reach the URL. The calls
themselves are held by the playbook tests beside this one, against the real API server."""

from __future__ import annotations

import base64
import importlib.util
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

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
