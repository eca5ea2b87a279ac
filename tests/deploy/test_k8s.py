"""Kubernetes, checked by machine: the manifests we own validate against the API's schemas, and the security
properties the class relies on hold in what would be applied — the grading pods' isolation, one uid per user for
nbgrader's exchange, the student servers' network policy, and a formgrader that is on from the server's start.

(The Zero to JupyterHub chart itself is not rendered here: neither helm nor the chart can be fetched offline. Its
values are read as data and their Python snippets run against stand-ins.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBERNETES = "1.33.0"  # the first version with user namespaces for pods on by default (hostUsers: false)


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _job() -> dict:
    (job,) = [d for d in _docs("grading-job.yaml") if d["kind"] == "Job"]
    return job


@pytest.mark.parametrize("name", ["grading-job.yaml", "policies.yaml"])
def test_manifests_validate_against_the_api(name: str) -> None:
    import kubernetes_validate

    for doc in _docs(name):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)  # raises on an unknown or mistyped field


def test_a_wrong_manifest_fails_validation() -> None:
    import kubernetes_validate

    job = _job()
    job["spec"]["template"]["spec"]["hostUser"] = False  # a typo the API server would drop silently
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES, strict=True)


def test_grading_pod_can_only_grade() -> None:
    pod = _job()["spec"]["template"]["spec"]
    (box,) = pod["containers"]
    assert pod["hostUsers"] is False and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    ctx = box["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["privileged"] is False
    assert ctx["readOnlyRootFilesystem"] is True and ctx["capabilities"]["drop"] == ["ALL"]
    assert "add" not in ctx["capabilities"]
    assert {"cpu", "memory", "ephemeral-storage"} <= set(box["resources"]["limits"])
    assert all(v.get("readOnly") for v in box["volumeMounts"] if v["name"] == "data")
    assert _job()["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    # it grades in the sandbox (tlcourse grade refuses to run without one), with a command the CLI accepts
    assert box["command"][:2] == ["tlcourse", "grade"] and "--no-sandbox" not in box["command"]
    from tlcourse.cli import build_parser

    build_parser().parse_args(box["command"][1:])


def test_grading_pods_have_no_network() -> None:
    (policy,) = [d for d in _docs("policies.yaml") if d["kind"] == "NetworkPolicy"]
    labels = _job()["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= labels.items(), "the policy selects the grading pods"
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert not policy["spec"].get("ingress") and not policy["spec"].get("egress"), "no rule: nothing allowed"


def _values() -> dict:
    return yaml.safe_load((K8S / "values.yaml").read_text())


def _run_extra_config(name: str) -> SimpleNamespace:
    from traitlets.config import Config

    c = Config()
    exec(_values()["hub"]["extraConfig"][name], {"c": c})  # noqa: S102 - our own file, as the hub runs it
    return c


def test_one_uid_per_user_for_the_exchange() -> None:
    """nbgrader's exchange keeps submissions apart by owner: every user's server gets a uid of its own."""
    c = _run_extra_config("tlcourse-uids")
    uid = c.KubeSpawner.uid
    uids = {uid(SimpleNamespace(user=SimpleNamespace(id=i, name=f"s{i}"))) for i in range(1, 301)}
    assert len(uids) == 300 and min(uids) >= 100000, "distinct, and none of the image's own users"
    assert c.KubeSpawner.gid == 100
    single = _values()["singleuser"]
    assert "uid" not in single, "a fixed uid would be every user's"
    policy = single["networkPolicy"]
    assert policy["enabled"] and policy["egressAllowRules"]["privateIPs"] is False
    assert policy["egressAllowRules"]["cloudMetadataServer"] is False
    assert single["allowPrivilegeEscalation"] is False


def test_only_instructors_see_the_grading_profile() -> None:
    import asyncio

    c = _run_extra_config("tlcourse-instructors")
    profiles = _values()["singleuser"]["profileList"]

    def visible(name: str) -> set[str]:
        spawner = SimpleNamespace(user=SimpleNamespace(name=name),
                                  config=SimpleNamespace(KubeSpawner=SimpleNamespace(profile_list=profiles)))
        return {p["slug"] for p in asyncio.run(c.KubeSpawner.profile_list_callable(spawner))}

    assert "grading" in visible("instructor1") and "grading" not in visible("student1")


def test_formgrader_is_on_from_the_start_without_a_hook(tmp_path: Path) -> None:
    """The grading profile points JUPYTER_CONFIG_PATH at a folder of the image that turns the formgrader on over
    the image's own 'off' (read with Jupyter's own config loaders); no postStart hook races the server."""
    grading = next(p for p in _values()["singleuser"]["profileList"] if p["slug"] == "grading")
    override = grading["kubespawner_override"]
    assert "lifecycle_hooks" not in override
    folder = override["environment"]["JUPYTER_CONFIG_PATH"]
    assert f"COPY deploy/k8s/formgrader {folder}" in (REPO / "deploy" / "Dockerfile").read_text()
    image = tmp_path / "image"  # what the Dockerfile's `disable --sys-prefix` lines leave
    (image / "jupyter_server_config.d").mkdir(parents=True)
    (image / "jupyter_server_config.d" / "off.json").write_text(
        '{"ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": false}}}')
    (image / "labconfig").mkdir()
    (image / "labconfig" / "page_config.json").write_text('{"disabledExtensions": {"nbgrader:formgrader": true}}')
    probe = ("import logging; from jupyter_core.paths import jupyter_config_path as p; "
             "from jupyter_server.extension.config import ExtensionConfigManager as M; "
             "from jupyterlab_server.config import get_page_config as g; "
             "print(M(read_config_path=p()).enabled('nbgrader.server_extensions.formgrader'), "
             "'nbgrader:formgrader' in g([], logger=logging.getLogger()).get('disabledExtensions', []))")

    def formgrader(config_path: str) -> str:
        env = {"JUPYTER_CONFIG_DIR": str(tmp_path / "user"), "JUPYTER_CONFIG_PATH": config_path, "PATH": "/usr/bin"}
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert formgrader(str(image)) == "False True", "the image alone keeps it off (students)"
    here = K8S / "formgrader"
    assert formgrader(f"{here}:{image}") == "True False", "the grading profile's folder turns it on"
