"""What one Kubernetes API call costs a playbook, four ways: the measurement behind the
playbooks' `kubernetes_api` action (docs/benchmarks/jobs.md).

Prints ONE JSON document. One local API server (in this process); for each way, one
`ansible-playbook` run of `--calls` tasks that each read the same Namespace, with the
credential as AAP injects it (K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_SSL_CA_CERT) and the
job_profile callback (benchmarks/job_profile: CPU seconds of ansible-playbook's process tree
per task):

- `kubernetes_core`: `kubernetes.core.k8s_info`, a module process importing the kubernetes client;
- `uri`: `ansible.builtin.uri`, a module process without the client (its Authorization header
  is a module argument: the job's events record it unless the task sets no_log);
- `library_module`: a module in `library/` beside the playbook speaking HTTP with the standard
  library, a module process without the client;
- `action`: the playbooks' `kubernetes_api` action, no process at all.

    .venv/bin/python benchmarks/kubernetes_calls.py [--calls 5]

Per way: `cpu_s_per_call` (mean over the tasks), `wall_s_per_call`, and `play_cpu_s` (the whole
run, ansible-playbook's own start and teardown included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cloudkit.local.apiserver.main import start_apiserver

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
PLAYBOOKS = Path(str(resources.files("cloudkit.local") / "playbooks"))
PROFILE_PLUGIN_DIR = Path(__file__).resolve().parent / "job_profile"
NAMESPACE = "default"

LIBRARY_MODULE = """
import json, os, ssl, http.client, urllib.parse
from ansible.module_utils.basic import AnsibleModule

def main():
    module = AnsibleModule(argument_spec={"path": {"type": "str", "required": True}})
    url = urllib.parse.urlsplit(os.environ["K8S_AUTH_HOST"])
    context = ssl.create_default_context(cafile=os.environ["K8S_AUTH_SSL_CA_CERT"])
    connection = http.client.HTTPSConnection(url.hostname, url.port, context=context)
    connection.request("GET", module.params["path"],
                       headers={"Authorization": "Bearer " + os.environ["K8S_AUTH_API_KEY"]})
    response = connection.getresponse()
    body = json.loads(response.read())
    if response.status != 200:
        module.fail_json(msg="HTTP %d" % response.status)
    module.exit_json(changed=False, object=body)

main()
"""


def tasks(way: str, calls: int) -> list[dict[str, Any]]:
    """`calls` tasks that each read the Namespace the given way."""
    path = f"/api/v1/namespaces/{NAMESPACE}"
    task: dict[str, Any] = {
        "kubernetes_core": {
            "kubernetes.core.k8s_info": {"kind": "Namespace", "name": NAMESPACE},
        },
        "uri": {
            "ansible.builtin.uri": {
                "url": "{{ lookup('ansible.builtin.env', 'K8S_AUTH_HOST') }}" + path,
                "ca_path": "{{ lookup('ansible.builtin.env', 'K8S_AUTH_SSL_CA_CERT') }}",
                "headers": {
                    "Authorization": "Bearer "
                    "{{ lookup('ansible.builtin.env', 'K8S_AUTH_API_KEY') }}"
                },
            },
        },
        "library_module": {"cloudkit_get": {"path": path}},
        "action": {
            "kubernetes_api": {
                "verb": "get",
                "api_version": "v1",
                "resource": "namespaces",
                "name": NAMESPACE,
            }
        },
    }[way]
    return [{"name": f"call {i}", **task} for i in range(calls)]


def write_playbook(directory: Path, way: str, calls: int) -> Path:
    """A playbook of the calls, with the shipped action plugins (and, for `library_module`,
    the module) beside it."""
    directory.mkdir(parents=True)
    (directory / "action_plugins").symlink_to(PLAYBOOKS / "action_plugins")
    (directory / "library").mkdir()
    (directory / "library" / "cloudkit_get.py").write_text(LIBRARY_MODULE)
    play = {
        "name": f"{calls} Kubernetes calls ({way})",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        # As the playbooks had it for their modules: no interpreter discovery, code on stdin.
        "vars": {
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "ansible_pipelining": True,
        },
        "tasks": tasks(way, calls),
    }
    path = directory / "calls.yml"
    path.write_text(yaml.safe_dump([play], sort_keys=False))
    return path


async def run_way(
    way: str, calls: int, credential: dict[str, str], scratch: Path
) -> dict[str, Any]:
    playbook = write_playbook(scratch / way, way, calls)
    profile = scratch / f"{way}.profile.jsonl"
    env = {
        **os.environ,
        **credential,
        "ANSIBLE_LOCAL_TEMP": str(scratch / "ansible-tmp"),
        "ANSIBLE_HOME": str(scratch / "ansible-home"),
        "ANSIBLE_CALLBACK_PLUGINS": str(PROFILE_PLUGIN_DIR),
        "ANSIBLE_CALLBACKS_ENABLED": "job_profile",
        "JOB_PROFILE_OUT": str(profile),
    }
    process = await asyncio.create_subprocess_exec(
        str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(playbook), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 600)
    if process.returncode != 0:
        raise RuntimeError(f"{way} failed:\n{output.decode()[-3000:]}")
    lines = [json.loads(line) for line in profile.read_text().splitlines()]
    per_task, total = lines[:-1], lines[-1]
    return {
        "cpu_s_per_call": round(statistics.fmean(t["cpu_s"] for t in per_task), 3),
        "wall_s_per_call": round(statistics.fmean(t["wall_s"] for t in per_task), 3),
        "play_cpu_s": total["cpu_s"],
        "play_wall_s": total["wall_s"],
        "module_runs": total["module_runs"],
    }


async def main(calls: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ck-calls-") as tmp:
        scratch = Path(tmp)
        server = await start_apiserver(scratch / "apiserver")
        try:
            credential = {
                "K8S_AUTH_HOST": server.url,
                "K8S_AUTH_API_KEY": server.token,
                "K8S_AUTH_SSL_CA_CERT": str(server.ca_cert),
                "K8S_AUTH_VERIFY_SSL": "True",
            }
            # Warm-up (bytecode, the collection's caches), not measured.
            await run_way("kubernetes_core", 1, credential, scratch / "warm")
            ways = ("kubernetes_core", "uri", "library_module", "action")
            figures = {way: await run_way(way, calls, credential, scratch) for way in ways}
        finally:
            await server.stop()
    return {
        "benchmark": "kubernetes_calls",
        "calls_per_play": calls,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        **figures,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5)
    options = parser.parse_args()
    print(json.dumps(asyncio.run(main(options.calls)), indent=2))
