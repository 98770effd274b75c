"""What the local stack tells its children: environments, whose settings win, URLs, tokens."""

from __future__ import annotations

from pathlib import Path

import yaml

from cloudkit.local.stack import environment as e
from cloudkit.local.stack.backends import write_templates

SHELL = {
    "PATH": "/usr/bin",
    "HOME": "/home/someone",
    "K8S_AUTH_CONTEXT": "prod",
    "K8S_AUTH_HOST": "https://prod.example.com",
    "K8S_AUTH_API_KEY": "users-cluster-key",
}
ENDPOINTS = e.operator_endpoints(metrics_port=9101, health_port=9102, notification_port=9103)
TOKEN_FILE = Path("state/automation/automation-token")
AAP_ENV = e.aap_operator_env("http://127.0.0.1:9200/api", TOKEN_FILE)


def operator_env(base: dict[str, str], token: str | None = "notify-t0ken") -> dict[str, str]:
    return e.operator_env(
        base,
        provider="aap",
        backend_env=AAP_ENV,
        namespace="cloudkit-computeinstance",
        endpoints=ENDPOINTS,
        notification_token=token,
    )


def test_every_child_runs_unbuffered_with_this_interpreter_first_and_no_user_cluster() -> None:
    env = e.base_env(SHELL, "/opt/venv/bin")
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"] == "/opt/venv/bin:/usr/bin"
    assert env["HOME"] == "/home/someone"
    assert not {"K8S_AUTH_CONTEXT", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY"} & env.keys()
    assert SHELL["K8S_AUTH_CONTEXT"] == "prod"  # the caller's mapping is left alone


def test_without_a_path_the_interpreters_bin_is_still_first() -> None:
    assert e.base_env({}, "/opt/venv/bin")["PATH"].split(":")[0] == "/opt/venv/bin"


def test_playbooks_reach_the_stacks_api_server_and_keep_ansible_files_in_the_state_dir() -> None:
    base = e.base_env(SHELL, "/opt/venv/bin")
    kubeconfig, backend_dir = Path("state/apiserver/kubeconfig"), Path("state/aap")
    env = e.playbook_env(base, kubeconfig=kubeconfig, backend_dir=backend_dir)
    assert env["KUBECONFIG"] == env["K8S_AUTH_KUBECONFIG"] == "state/apiserver/kubeconfig"
    assert env["ANSIBLE_HOME"] == "state/aap/ansible-home"
    assert env["ANSIBLE_LOCAL_TEMP"] == "state/aap/ansible-tmp"
    assert env["PATH"] == base["PATH"]


def test_the_operator_serves_on_loopback_at_the_stacks_ports() -> None:
    assert ENDPOINTS.metrics_url == "http://127.0.0.1:9101/metrics"
    assert ENDPOINTS.health_url == "http://127.0.0.1:9102/healthz"
    assert ENDPOINTS.notification_url == "http://127.0.0.1:9103/notifications"
    assert e.address(ENDPOINTS.notification_url) == "127.0.0.1:9103"
    assert e.port_of(ENDPOINTS.health_url) == 9102
    assert e.automation_url(9200) == "http://127.0.0.1:9200/api"


def test_the_operator_gets_the_stacks_backend_namespace_and_addresses() -> None:
    env = operator_env({"PATH": "/usr/bin"})
    assert env["CLOUDKIT_PROVISIONING_PROVIDER"] == "aap"
    assert env["CLOUDKIT_AAP_URL"] == "http://127.0.0.1:9200/api"
    assert env["CLOUDKIT_AAP_TOKEN_FILE"] == str(TOKEN_FILE)
    assert env["CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE"] == "cloudkit-computeinstance"
    assert env["CLOUDKIT_METRICS_ADDRESS"] == "127.0.0.1:9101"
    assert env["CLOUDKIT_HEALTH_ADDRESS"] == "127.0.0.1:9102"
    assert env["CLOUDKIT_NOTIFICATION_ADDRESS"] == "127.0.0.1:9103"
    assert env["CLOUDKIT_NOTIFICATION_TOKEN"] == "notify-t0ken"
    assert env["PATH"] == "/usr/bin"


def test_the_stacks_settings_win_over_the_users_shell() -> None:
    shell = {
        "CLOUDKIT_PROVISIONING_PROVIDER": "eda",
        "CLOUDKIT_AAP_URL": "https://aap.example.com/api",
        "CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE": "elsewhere",
        "CLOUDKIT_METRICS_ADDRESS": "0.0.0.0:8080",
        "CLOUDKIT_NOTIFICATION_ADDRESS": "0.0.0.0:9000",
        "CLOUDKIT_NOTIFICATION_TOKEN": "users-notify-token",
    }
    assert operator_env(shell) == operator_env({})


def test_stack_owned_secrets_in_the_shell_never_reach_the_operator() -> None:
    shell = {
        "CLOUDKIT_AAP_TOKEN": "users-aap-token",
        "CLOUDKIT_EDA_WEBHOOK_TOKEN": "users-eda-token",
        "CLOUDKIT_NOTIFICATION_ADDRESS": "0.0.0.0:9000",
        "CLOUDKIT_NOTIFICATION_TOKEN": "users-notify-token",
    }
    env = operator_env(shell, token=None)
    assert not e.STACK_OWNED & env.keys()
    assert not {"users-aap-token", "users-eda-token", "users-notify-token"} & set(env.values())


def test_the_users_other_operator_settings_are_inherited() -> None:
    env = operator_env({"CLOUDKIT_POLL_INTERVAL": "3s", "LANG": "C.UTF-8"})
    assert env["CLOUDKIT_POLL_INTERVAL"] == "3s"
    assert env["LANG"] == "C.UTF-8"


def test_without_a_notification_token_the_operator_polls_alone() -> None:
    env = operator_env({}, token=None)
    assert "CLOUDKIT_NOTIFICATION_ADDRESS" not in env
    assert "CLOUDKIT_NOTIFICATION_TOKEN" not in env


def test_job_notifications_carry_their_token_in_a_header_not_the_url() -> None:
    entry = e.job_notification(ENDPOINTS.notification_url, "notify-t0ken")
    assert entry == {
        "url": "http://127.0.0.1:9103/notifications",
        "headers": {"Authorization": "Bearer notify-t0ken"},
    }


def test_the_aap_operator_env_names_the_templates_the_service_is_given(tmp_path: Path) -> None:
    templates = tmp_path / "automation" / "templates.yml"
    write_templates(templates, None)
    names = {entry["name"] for entry in yaml.safe_load(templates.read_text())}
    assert names == {
        AAP_ENV["CLOUDKIT_AAP_PROVISION_TEMPLATE"],
        AAP_ENV["CLOUDKIT_AAP_DEPROVISION_TEMPLATE"],
    }
    assert "CLOUDKIT_AAP_TOKEN" not in AAP_ENV  # only the file's path, never the token


def test_the_eda_operator_env_has_both_webhook_names_and_the_token_file_only() -> None:
    provision, deprovision = "http://127.0.0.1:5000/provision", "http://127.0.0.1:5000/deprovision"
    env = e.eda_operator_env(provision, deprovision, Path("state/eda/webhook-token"))
    assert env == {
        "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK": provision,
        "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK": deprovision,
        "CLOUDKIT_COMPUTE_INSTANCE_CREATE_WEBHOOK": provision,
        "CLOUDKIT_COMPUTE_INSTANCE_DELETE_WEBHOOK": deprovision,
        "CLOUDKIT_EDA_WEBHOOK_TOKEN_FILE": "state/eda/webhook-token",
    }


def test_the_users_kubeconfig_defaults_every_context_to_the_watched_namespace() -> None:
    inner = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "admin", "user": {"token": "kube-t0ken"}}],
        "contexts": [
            {"name": "local", "context": {"cluster": "local", "user": "admin"}},
            {"name": "other", "context": {"cluster": "local", "user": "admin", "namespace": "x"}},
        ],
        "current-context": "local",
    }
    published = yaml.safe_load(e.user_kubeconfig(yaml.safe_dump(inner), "watched"))
    assert [c["context"]["namespace"] for c in published["contexts"]] == ["watched", "watched"]
    assert {k: v for k, v in published.items() if k != "contexts"} == {
        k: v for k, v in inner.items() if k != "contexts"
    }


def test_a_kubeconfig_without_contexts_is_published_unchanged() -> None:
    inner = {"apiVersion": "v1", "kind": "Config", "clusters": []}
    assert yaml.safe_load(e.user_kubeconfig(yaml.safe_dump(inner), "watched")) == inner


def test_the_feedback_gets_the_service_its_ca_and_a_token_file_and_nothing_from_the_shell() -> None:
    shell = {
        "CLOUDKIT_FULFILLMENT_SERVER_ADDRESS": "https://users-service.example.com",
        "CLOUDKIT_FULFILLMENT_TOKEN_FILE": "/home/someone/token",
        "CLOUDKIT_FULFILLMENT_CA_BUNDLE": "/home/someone/ca.pem",
    }
    alone = operator_env(shell)
    assert not shell.keys() & alone.keys(), "no feedback unless the stack gives it"
    feedback = e.feedback_operator_env(
        "https://127.0.0.1:9300", "state/fulfillment/tls/tls.crt", Path("state/operator.token")
    )
    env = e.operator_env(
        shell,
        provider="aap",
        backend_env=AAP_ENV,
        namespace="cloudkit-computeinstance",
        endpoints=ENDPOINTS,
        notification_token=None,
        feedback_env=feedback,
    )
    assert env["CLOUDKIT_FULFILLMENT_SERVER_ADDRESS"] == "https://127.0.0.1:9300"
    assert env["CLOUDKIT_FULFILLMENT_CA_BUNDLE"] == "state/fulfillment/tls/tls.crt"
    # The token stays in its file; only the path travels.
    assert env["CLOUDKIT_FULFILLMENT_TOKEN_FILE"] == "state/operator.token"
