"""The deployment files name things that exist: what the Dockerfile copies and runs, what the hub and the
Kubernetes values configure. (The image cannot be built here: no container engine; the hub itself runs for real in
``tests/deploy/test_hub.py``.)"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _dockerfile() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text()
    return [ln.strip() for ln in re.sub(r"\\\n\s*", " ", text).splitlines() if ln.strip() and not ln.startswith("#")]


def test_dockerfile_copies_files_that_exist() -> None:
    lines = _dockerfile()
    assert lines[0].startswith("FROM quay.io/jupyter/"), "a Jupyter docker-stacks base image"
    copies = [shlex.split(ln)[1:-1] for ln in lines if ln.startswith("COPY ")]
    assert copies, "the Dockerfile copies the course in"
    for sources in copies:
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
    run = " ".join(ln for ln in lines if ln.startswith("RUN "))
    assert "-r /opt/tlcourse/src/requirements.txt" in run, "the students' lock"
    assert "--no-deps /opt/tlcourse/src" in run and "-e " not in run, "the package, not editable"
    assert "labextension enable --level=sys_prefix nbgrader" in run and "bubblewrap" in run


def test_dockerfile_installs_the_servers_nbgrader_config() -> None:
    """Every server reads /etc/jupyter/nbgrader_config.py: it must be deploy/hub's (course id, exchange), not the
    repository root's, whose source/release/gradebook paths point into a checkout the image does not hold."""
    text = (DEPLOY / "Dockerfile").read_text()
    copies = [line.split()[1:] for line in text.splitlines() if line.startswith("COPY ")]
    assert ["deploy/hub/nbgrader_config.py", "/etc/jupyter/nbgrader_config.py"] in copies
    assert not [c for c in copies if c[0] == "nbgrader_config.py"]


def test_dockerfile_tlcourse_commands_parse() -> None:
    from tlcourse.cli import build_parser

    for line in _dockerfile():
        for command in re.findall(r"tlcourse ((?:[a-z-]+ ?)+(?:--[a-z-]+ ?)*)", line):
            build_parser().parse_args(shlex.split(command))


def test_hub_config_in_both_modes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import grp

    from tlcourse.hubcourses import prepare_exchange

    def load() -> Config:
        c = Config()
        exec((DEPLOY / "hub" / "jupyterhub_config.py").read_text(), {"get_config": lambda: c})  # noqa: S102
        return c

    c = load()
    assert c.JupyterHub.authenticator_class == "pam" and c.PAMAuthenticator.admin_groups == {"tlcourse-instructors"}
    assert c.Spawner.cmd == ["/opt/tlcourse/venv/bin/jupyterhub-singleuser"]
    assert c.Spawner.environment["TLCOURSE_EXCHANGE_ROOT"] == "/srv/nbgrader/exchange"
    monkeypatch.setenv("TLCOURSE_HUB_AUTH", "dummy")
    monkeypatch.setenv("TLCOURSE_HUB_PASSWORD", "x")
    monkeypatch.setenv("TLCOURSE_HUB_USERS", "a,b")
    assert load().Authenticator.allowed_users == {"a", "b"}
    monkeypatch.setenv("TLCOURSE_HUB_AUTH", "lti13")
    with pytest.raises(KeyError, match="TLCOURSE_LTI_ISSUER"):  # no silent default for the platform
        load()
    for name, value in {"ISSUER": "https://lms.example", "CLIENT_ID": "10,11", "AUTHORIZE_URL": "https://lms.example/a",
                        "JWKS_URL": "https://lms.example/jwks"}.items():
        monkeypatch.setenv(f"TLCOURSE_LTI_{name}", value)
    with pytest.raises(ValueError, match="TLCOURSE_LTI_CONTEXTS"):  # any course's teachers would be admins here
        load()
    monkeypatch.setenv("TLCOURSE_LTI_CONTEXTS", "course-1,course-2")
    lti = load()
    assert lti.JupyterHub.authenticator_class == "tlcourse.hublti.CourseLTI13Authenticator"
    assert lti.CourseLTI13Authenticator.client_id == {"10", "11"}
    assert lti.CourseLTI13Authenticator.contexts == {"course-1": "tlcourse", "course-2": "tlcourse"}
    assert "server_token_scopes" not in lti.Spawner, "one course: the servers' token keeps the hub's default scopes"
    monkeypatch.setenv("TLCOURSE_LTI_CONTEXTS", "course-1=ml101,course-2=ml303")
    monkeypatch.setenv("TLCOURSE_HUB_COURSES", "ml101, ml202")
    monkeypatch.setenv("TLCOURSE_EXCHANGE_ROOT", str(tmp_path / "exchange"))
    with pytest.raises(ValueError, match="not prepared"):  # setup.sh has not made the courses' folders
        load()
    prepare_exchange(tmp_path / "exchange", ["ml101", "ml202"], grp.getgrgid(os.getegid()).gr_name)
    with pytest.raises(ValueError, match="ml303"):  # an LMS course mapped to a course this hub does not have
        load()
    monkeypatch.setenv("TLCOURSE_LTI_CONTEXTS", "course-1=ml101,course-2=ml202,course-3")
    several = load()
    assert several.CourseLTI13Authenticator.contexts == {"course-1": "ml101", "course-2": "ml202", "course-3": "ml101"}
    assert several.CourseLTI13Authenticator.role_days == 150
    assert several.Spawner.environment["TLCOURSE_HUB_COURSES"] == "ml101,ml202"
    assert "read:users:groups!user" in several.Spawner.server_token_scopes  # nbgrader reads the user's groups
    assert not {"admin:users", "read:users", "admin:groups"} & set(several.Spawner.server_token_scopes)
    monkeypatch.delenv("TLCOURSE_HUB_COURSES")
    monkeypatch.setenv("TLCOURSE_LTI_CONTEXTS", "course-1,course-2")
    assert lti.CourseLTI13Authenticator.instructors_group == "tlcourse-instructors"
    assert "tornado_settings" not in lti.JupyterHub, "plain http (the loopback test): the default cookies"
    monkeypatch.setenv("TLCOURSE_HUB_SSL_CERT", "/etc/letsencrypt/live/hub/fullchain.pem")
    with pytest.raises(ValueError, match="both"):
        load()
    monkeypatch.setenv("TLCOURSE_HUB_SSL_KEY", "/etc/letsencrypt/live/hub/privkey.pem")
    tls = load()
    assert tls.JupyterHub.bind_url == "https://:443" and tls.JupyterHub.ssl_key.endswith("privkey.pem")
    assert tls.JupyterHub.tornado_settings["cookie_options"] == {"SameSite": "None", "Secure": True}
    assert tls.CourseLTI13Authenticator.uri_scheme == "https"
    for name in ("SSL_CERT", "SSL_KEY"):
        monkeypatch.delenv(f"TLCOURSE_HUB_{name}")
    monkeypatch.setenv("TLCOURSE_HUB_AUTH", "ldap")
    with pytest.raises(ValueError, match="choose pam, lti13"):
        load()


def test_servers_nbgrader_config_for_one_course_and_several(monkeypatch: pytest.MonkeyPatch) -> None:
    """One course: its id for everyone. Several: no fixed id; nbgrader asks the hub for the user's groups, keeps
    each course's assignments in their own folder, and works in the root-owned, group-shared exchange folders."""
    from nbgrader.auth import Authenticator, JupyterHubAuthPlugin, NoAuthPlugin

    def load() -> Config:
        c = Config()
        exec((DEPLOY / "hub" / "nbgrader_config.py").read_text(), {"get_config": lambda: c})  # noqa: S102
        return c

    monkeypatch.delenv("TLCOURSE_HUB_COURSES", raising=False)
    one = load()
    assert one.CourseDirectory.course_id == "tlcourse"
    assert isinstance(Authenticator(config=one).plugin, NoAuthPlugin)
    monkeypatch.setenv("TLCOURSE_HUB_COURSES", "ml101,ml202")
    several = load()
    assert "course_id" not in several.CourseDirectory
    assert isinstance(Authenticator(config=several).plugin, JupyterHubAuthPlugin)
    assert several.Exchange.path_includes_course and several.CourseDirectory.groupshared


def test_course_ids_groups_and_exchange_folders(tmp_path: Path) -> None:
    """tlcourse.hubcourses: LMS courses to course ids (checked), roles to nbgrader's hub groups, and the exchange
    folders made before a student could: root's, group-shared, the inbound write-only and sticky; a folder someone
    else made first, or a link, is refused rather than adopted."""
    import grp
    import stat

    from tlcourse.hubcourses import (
        check_exchange,
        course_groups,
        parse_course_ids,
        parse_courses,
        prepare_exchange,
    )

    assert parse_courses(" a=ml101 ,, b ", default="ml202") == {"a": "ml101", "b": "ml202"}
    for bad in ("a=ML101", "a=../etc", "=ml101", "a=1ml", "a=" + "x" * 41, "a=ml 101"):
        with pytest.raises(ValueError):
            parse_courses(bad)
    assert course_groups([("ml101", "student"), ("ml202", "instructor"), ("ml101", "student")]) == [
        "formgrade-ml202", "nbgrader-ml101"]
    with pytest.raises(KeyError):
        course_groups([("ml101", "owner")])
    assert parse_course_ids("ml101, ml202") == ["ml101", "ml202"]
    with pytest.raises(ValueError):
        parse_course_ids("ml101,../x")
    group = grp.getgrgid(os.getegid()).gr_name
    root = tmp_path / "exchange"
    made = prepare_exchange(root, ["ml101", "ml202"], group)
    assert len(made) == 8 and stat.S_IMODE(root.stat().st_mode) == 0o1777  # sticky: course folders stay put
    modes = {p.relative_to(root).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in made}
    assert modes["ml101"] == modes["ml101/outbound"] == "0o2775"
    assert modes["ml101/inbound"] == "0o3773" and modes["ml101/feedback"] == "0o2771"
    assert prepare_exchange(root, ["ml101"], group) == made[:4], "idempotent"
    check_exchange(root, ["ml101", "ml202"])
    with pytest.raises(ValueError, match="ml303"):
        check_exchange(root, ["ml101", "ml303"])  # a course setup.sh never prepared
    os.chmod(root / "ml202" / "inbound", 0o777)
    with pytest.raises(ValueError, match="inbound"):
        check_exchange(root, ["ml202"])
    prepare_exchange(root, ["ml202"], group)
    (root / "ml202" / "feedback").rmdir()
    (root / "ml202" / "feedback").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="feedback"):
        check_exchange(root, ["ml202"])
    with pytest.raises(ValueError, match="not a folder"):
        prepare_exchange(root, ["ml202"], group)  # never follows the link
    with pytest.raises(ValueError, match="course id"):
        prepare_exchange(root, ["../x"], group)
    (root / "ml303").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        prepare_exchange(root, ["ml303"], group)
    if os.geteuid() == 0:  # a folder a student made first
        (root / "ml404").mkdir()
        os.chown(root / "ml404", 4321, 4321)
        with pytest.raises(ValueError, match="belongs to uid 4321"):
            prepare_exchange(root, ["ml404"], group)
        _student_cannot_move_a_course_away(group)


def _student_cannot_move_a_course_away(group: str) -> None:
    """In the sticky root a student (here: nobody) cannot rename a prepared course folder away to put their own
    in its place; in nbgrader's plain 0777 root they could."""
    import shutil
    import tempfile

    from tlcourse.hubcourses import prepare_exchange

    base = Path(tempfile.mkdtemp(dir="/var/tmp"))  # a path every user can reach
    try:
        os.chmod(base, 0o755)
        prepare_exchange(base / "exchange", ["ml101"], group)
        move = ["runuser", "-u", "nobody", "--", "mv", str(base / "exchange" / "ml101"), str(base / "exchange" / "x")]
        refused = subprocess.run(move, capture_output=True, text=True)
        assert refused.returncode != 0 and "Operation not permitted" in refused.stderr, refused
        os.chmod(base / "exchange", 0o777)  # without the sticky bit: the squat works
        assert subprocess.run(move, capture_output=True, text=True).returncode == 0
    finally:
        shutil.rmtree(base)


def test_hub_setup_script_is_valid_bash() -> None:
    done = subprocess.run(["bash", "-n", str(DEPLOY / "hub" / "setup.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_k8s_values() -> None:
    values = yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())
    single = values["singleuser"]
    slugs = {p["slug"] for p in single["profileList"]}
    assert {"cpu", "gpu", "grading"} <= slugs
    gpu = next(p for p in single["profileList"] if p["slug"] == "gpu")
    assert gpu["kubespawner_override"]["extra_resource_limits"]["nvidia.com/gpu"] == "1"
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in single["storage"]["extraVolumes"]}
    mounts = {m["name"]: m["mountPath"] for m in single["storage"]["extraVolumeMounts"]}
    assert mounts["nbgrader-exchange"] == single["extraEnv"]["TLCOURSE_EXCHANGE_ROOT"] and "nbgrader-exchange" in claims
    assert "ReadWriteMany" in (DEPLOY / "k8s" / "policies.yaml").read_text()  # the exchange claim
    hub_json = REPO / "benchmarks" / "HUB.json"
    if hub_json.is_file():  # the limit leaves room for the measured peak of one student
        measured = json.loads(hub_json.read_text())
        peak_gb = (measured["server_at_rest_mb"] + measured["kernel_peak_mb"]) / 1024
        assert float(single["memory"]["limit"].rstrip("G")) >= peak_gb


def test_lti_authenticator_roles_contexts_and_names(tmp_path: Path) -> None:
    """The hub's LTI login: role -> admin and hub group; only the launch callback logs in (the login form and the
    token API get nothing); launches from other LMS courses or deployments, names that are not course users,
    e-mails off the institution's domains, a name claimed by a second LMS user and the machine's own accounts are
    refused (403), never rewritten."""
    import asyncio

    from ltiauthenticator.lti13.handlers import LTI13CallbackHandler
    from tornado import web

    from tlcourse.hublti import CourseLTI13Authenticator

    claim = "https://purl.imsglobal.org/spec/lti/claim/"
    auth = CourseLTI13Authenticator(contexts={"course-1": "ml101", "course-2": "ml202"}, deployment_ids={"dep-1"},
                                    email_domains={"uni.example"}, bindings_file=str(tmp_path / "lti-users.json"),
                                    roles_file=str(tmp_path / "lti-roles.json"))
    callback = LTI13CallbackHandler.__new__(LTI13CallbackHandler)  # the handler type is what counts

    def launch(email: str, role: str = "Learner", context: str = "course-1", sub: str | None = None,
               deployment: str = "dep-1", handler: object = callback) -> dict | None:
        return asyncio.run(auth.authenticate(handler, {
            "sub": sub or f"sub-{email}", "email": email, claim + "context": {"id": context},
            claim + "deployment_id": deployment,
            claim + "roles": [f"http://purl.imsglobal.org/vocab/lis/v2/membership#{role}"]}))

    student = launch("Jane@uni.example")
    assert (student["name"], student["admin"], student["groups"]) == ("jane", False, ["students", "nbgrader-ml101"])
    teacher = launch("tlc-pat@uni.example", role="Instructor")
    assert (teacher["admin"], teacher["groups"]) == (True, ["instructors", "formgrade-ml101"])
    # pat also takes the other course as a student: both courses' groups, still an instructor (of ml101: admin and
    # the Unix group that owns the courses' exchange folders, so that pat can still release there)
    both = launch("tlc-pat@uni.example", context="course-2")
    assert (both["admin"], both["groups"]) == (True, ["instructors", "formgrade-ml101", "nbgrader-ml202"])
    demoted = launch("tlc-pat@uni.example")  # no longer ml101's instructor: a student of both
    assert (demoted["admin"], demoted["groups"]) == (False, ["students", "nbgrader-ml101", "nbgrader-ml202"])
    # two LMS sections of one nbgrader course: a TA in one, a student in the other, is in both of its groups
    auth.contexts = {"course-1": "ml101", "course-1b": "ml101", "course-2": "ml202"}
    launch("tlc-pat@uni.example", role="Instructor")
    section = launch("tlc-pat@uni.example", context="course-1b")
    assert section["groups"] == ["instructors", "formgrade-ml101", "nbgrader-ml101", "nbgrader-ml202"]
    # ml101 is no longer served: its roles are forgotten, and do not come back when it is served again
    auth.contexts = {"course-2": "ml202"}
    assert launch("tlc-pat@uni.example", context="course-2")["groups"] == ["students", "nbgrader-ml202"]
    auth.contexts = {"course-1": "ml101", "course-2": "ml202"}
    again = launch("tlc-pat@uni.example", context="course-2")
    assert (again["admin"], again["groups"]) == (False, ["students", "nbgrader-ml202"])
    # a role no launch renewed for a term is forgotten: a TA who never comes back to that course loses admin
    launch("tlc-pat@uni.example", role="Instructor")
    roles = json.loads((tmp_path / "lti-roles.json").read_text())
    roles["tlc-pat"]["course-1"]["at"] -= (auth.role_days + 1) * 86400
    (tmp_path / "lti-roles.json").write_text(json.dumps(roles))
    expired = launch("tlc-pat@uni.example", context="course-2")
    assert (expired["admin"], expired["groups"]) == (False, ["students", "nbgrader-ml202"])
    assert launch("tlc-pat@uni.example", role="Instructor", handler=object()) is None, "the login form: nothing"
    assert auth.check_allowed("jane", student)
    bad_launches = [{"email": "jane@uni.example", "context": "course-3"},  # an LMS course not for this hub
                    {"email": "jane@uni.example", "deployment": "dep-9"},  # another deployment of the tool
                    {"email": "../etc@uni.example"}, {"email": "jane doe@uni.example"},
                    {"email": "jane@gmail.com"},  # not the institution's domain
                    {"email": "jane@uni.example", "sub": "someone-else"},  # jane's name, another LMS user
                    {"email": "root@uni.example"}, {"email": "daemon@uni.example"}]  # the machine's own accounts
    for bad in bad_launches:
        with pytest.raises(web.HTTPError) as refused:
            launch(**bad)
        assert refused.value.status_code == 403, bad
    assert json.loads((tmp_path / "lti-users.json").read_text()) == {"jane": "sub-Jane@uni.example",
                                                                      "tlc-pat": "sub-tlc-pat@uni.example"}
    roles = json.loads((tmp_path / "lti-roles.json").read_text())
    assert {n: {c: r["role"] for c, r in rs.items()} for n, rs in roles.items()} == {
        "jane": {"course-1": "student"}, "tlc-pat": {"course-2": "student"}}
    assert oct((tmp_path / "lti-roles.json").stat().st_mode & 0o777) == "0o600", "the hub's state: root only"
