"""A class on JupyterHub, end to end: real JupyterHub, real Unix users, nbgrader's exchange, headless Chromium.

The hub runs ``deploy/hub/jupyterhub_config.py`` (with a test password instead of PAM) on an environment built by
``deploy/hub/setup.sh --light`` (Jupyter, nbgrader and JupyterHub, no torch: the students' servers here only fetch
and submit). An instructor and two students are Unix users. The instructor releases the warm-up through the
exchange; each student logs in in Chromium, fetches it from the Assignments tab, has answers put in place (through
the server's contents API), and submits it; the instructor collects, `tlcourse grade` grades (as root: the
sandbox's limits need it), feedback is released, and each student fetches theirs and sees the score. Students
cannot read each other's files. Everything made — users, processes, folders — is removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from support.course import WARMUP, fill, read_csv, released_nb, run_tlcourse, solved, wrong_sources

from tlcourse.grading.sandbox import sandbox_problem

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("TLCOURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PREFIX = "tlchub"  # every user and group this test makes starts with it
INSTRUCTOR, STUDENTS = f"{PREFIX}-instr", (f"{PREFIX}-alice", f"{PREFIX}-bob")
LTI_STUDENT, LTI_INSTRUCTOR = f"{PREFIX}-carol", f"{PREFIX}-dana"  # no account until their first launch
LTI_COURSES = {"course-4401": f"{PREFIX}-a", "course-7777": f"{PREFIX}-b"}  # LMS course -> nbgrader course
PASSWORD = secrets.token_hex(12)
MEM_LIMIT_MB = 768  # each user's server and kernels (the light environment has no torch: plenty)
ARTIFACTS = REPO / "test-artifacts" / "hub"

pytestmark = pytest.mark.slow


def _missing() -> list[str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (the hub starts servers as other users)")
    for tool in ("configurable-http-proxy", "useradd", "runuser", "/usr/bin/python3.11"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    return missing


@pytest.fixture(scope="module", autouse=True)
def _need_hub() -> None:
    missing = _missing()
    if missing:
        message = "hub test needs " + ", ".join(missing)
        if os.environ.get("TLCOURSE_REQUIRE_HUB") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _sh(*cmd: str, user: str | None = None, cwd: Path | None = None, env: dict | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    full = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", user, "--", *cmd] if user else list(cmd)
    done = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(full)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Hub:
    url: str
    base: Path
    env_dir: Path
    exchange: Path
    course: Path  # the instructor's course folder
    timings: dict[str, float] = field(default_factory=dict)

    def as_instructor(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {"PATH": f"{self.env_dir}/bin:/usr/bin:/bin", "HOME": f"/home/{INSTRUCTOR}",
               "TLCOURSE_EXCHANGE_ROOT": str(self.exchange)}
        return _sh(*cmd, user=INSTRUCTOR, cwd=self.course, env=env, check=check)


def _cleanup(base: Path) -> None:
    people = (INSTRUCTOR, *STUDENTS, LTI_STUDENT, LTI_INSTRUCTOR)
    for name in people:
        _sh("pkill", "-KILL", "-u", name, check=False)
    time.sleep(0.5)
    for name in people:
        _sh("userdel", "-r", "-f", name, check=False)
    for group in (f"{PREFIX}-students", f"{PREFIX}-instructors"):
        _sh("groupdel", group, check=False)
    shutil.rmtree(base, ignore_errors=True)


def _start_hub(log_path: Path, env_dir: Path, exchange: Path, state: Path,
               auth: dict[str, str]) -> tuple[subprocess.Popen, str, float]:
    """``deploy/hub/jupyterhub_config.py`` on free loopback ports with the ``auth`` settings; (process, URL, seconds
    it took to answer)."""
    port = _free_port()
    state.mkdir(mode=0o700, exist_ok=True)
    hub_env = dict(os.environ, TLCOURSE_HUB_ENV=str(env_dir), TLCOURSE_HUB_STATE=str(state),
                   TLCOURSE_EXCHANGE_ROOT=str(exchange), TLCOURSE_HUB_URL=f"http://127.0.0.1:{port}",
                   TLCOURSE_HUB_API_PORT=str(_free_port()), TLCOURSE_HUB_PROXY_API=f"http://127.0.0.1:{_free_port()}",
                   TLCOURSE_HUB_SPAWNER_ARGS="--LabApp.expose_app_in_browser=True",
                   TLCOURSE_HUB_MEM_LIMIT=f"{MEM_LIMIT_MB}M", TLCOURSE_HUB_CPU_LIMIT="1",
                   TLCOURSE_HUB_STUDENTS_GROUP=f"{PREFIX}-students",
                   TLCOURSE_HUB_INSTRUCTORS_GROUP=f"{PREFIX}-instructors",
                   PATH=f"{env_dir}/bin:{os.environ['PATH']}", **auth)
    log = open(log_path, "w")  # noqa: SIM115 - the hub writes to it until it stops
    started = time.monotonic()
    process = subprocess.Popen([str(env_dir / "bin" / "jupyterhub"), "-f",
                                str(REPO / "deploy" / "hub" / "jupyterhub_config.py")], cwd=state, env=hub_env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(f"{url}/hub/api/", timeout=5):
                return process, url, time.monotonic() - started
        except OSError:
            if process.poll() is not None or time.monotonic() - started > 120:
                log.flush()
                _stop_hub(process)
                pytest.fail("JupyterHub did not start:\n" + log_path.read_text()[-4000:])
            time.sleep(0.5)


def _stop_hub(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 15)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    env_dir, exchange, state = base / "env", base / "exchange", base / "state"
    process = None
    try:
        started = time.monotonic()
        setup_env = dict(os.environ, TLCOURSE_HUB_ENV=str(env_dir), TLCOURSE_EXCHANGE_ROOT=str(exchange),
                         TLCOURSE_HUB_STATE=str(state), PYTHON="/usr/bin/python3.11",
                         TLCOURSE_HUB_STUDENTS_GROUP=f"{PREFIX}-students",
                         TLCOURSE_HUB_INSTRUCTORS_GROUP=f"{PREFIX}-instructors")
        _sh("bash", str(REPO / "deploy" / "hub" / "setup.sh"), "--light", env=setup_env)
        setup_seconds = time.monotonic() - started
        for group in (f"{PREFIX}-students", f"{PREFIX}-instructors"):
            _sh("groupadd", "-f", group)
        _sh("useradd", "-m", "-K", "HOME_MODE=0700", "-G", f"{PREFIX}-instructors", INSTRUCTOR)
        for student in STUDENTS:
            _sh("useradd", "-m", "-K", "HOME_MODE=0700", "-G", f"{PREFIX}-students", student)
        course = Path(f"/home/{INSTRUCTOR}/course")
        course.mkdir()
        shutil.copyfile(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
        shutil.copytree(REPO / "solutions" / WARMUP, course / "solutions" / WARMUP)
        (course / "course").mkdir()  # nbgrader keeps its gradebook here (nbgrader_config.py)
        _sh("chown", "-R", f"{INSTRUCTOR}:{INSTRUCTOR}", str(course))
        process, url, hub_start = _start_hub(base / "hub.log", env_dir, exchange, state, {
            "TLCOURSE_HUB_AUTH": "dummy", "TLCOURSE_HUB_PASSWORD": PASSWORD,
            "TLCOURSE_HUB_USERS": ",".join([INSTRUCTOR, *STUDENTS]), "TLCOURSE_HUB_ADMINS": INSTRUCTOR})
        hub = Hub(url, base, env_dir, exchange, course,
                  {"setup (light environment)": setup_seconds, "hub start": hub_start})
        yield hub
    finally:
        if process is not None:
            _stop_hub(process)
        _cleanup(base)


def _login(page, hub: Hub, user: str) -> None:
    page.goto(f"{hub.url}/hub/login", wait_until="domcontentloaded", timeout=60_000)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(f"**/user/{user}/lab**", timeout=180_000)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=120_000)


def _open_assignments(page) -> None:
    page.wait_for_function("() => window.jupyterapp.commands.hasCommand('nbgrader:open-assignment-list')",
                           timeout=120_000)
    page.evaluate("() => window.jupyterapp.restored")  # the saved layout first: it would close a panel opened early
    page.evaluate("() => window.jupyterapp.commands.execute('nbgrader:open-assignment-list')")
    try:
        page.locator(f"text={WARMUP} >> visible=true").first.wait_for(timeout=60_000)  # the list's row, not a tab
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "assignments-not-listed.png"))
        raise


def _put_notebook(page, user: str, path: str, nb: nbformat.NotebookNode) -> None:
    """Save a notebook through the user's own server (the contents API), as the lab would."""
    status = page.evaluate("""async ([user, path, content]) => {
        const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || '';
        const r = await fetch(`/user/${user}/api/contents/${path}`, {method: 'PUT',
            headers: {'Content-Type': 'application/json', 'X-XSRFToken': decodeURIComponent(xsrf)},
            body: JSON.stringify({type: 'notebook', format: 'json', content: content})});
        return r.status; }""", [user, path, json.loads(nbformat.writes(nb))])
    assert status in (200, 201), f"saving {path} for {user}: HTTP {status}"


def _student_round(hub: Hub, browser, user: str, answers: nbformat.NotebookNode) -> None:
    page = browser.new_page()
    _login(page, hub, user)
    _open_assignments(page)
    page.get_by_role("button", name="Fetch").first.click()
    page.get_by_role("button", name="Submit").first.wait_for(timeout=60_000)
    _put_notebook(page, user, f"{WARMUP}/{WARMUP}.ipynb", answers)
    page.get_by_role("button", name="Submit").first.click()
    page.get_by_text("submitted", exact=False).first.wait_for(timeout=60_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{user}-submitted.png"))
    page.close()


def _fetch_feedback(hub: Hub, browser, user: str) -> str:
    page = browser.new_page()
    _login(page, hub, user)
    _open_assignments(page)
    page.get_by_role("button", name="Fetch Feedback").first.click()
    home = Path(pwd.getpwnam(user).pw_dir)
    deadline = time.monotonic() + 60
    while not list(home.glob(f"{WARMUP}/feedback/*/{WARMUP}.html")) and time.monotonic() < deadline:
        time.sleep(0.5)
    (html,) = home.glob(f"{WARMUP}/feedback/*/{WARMUP}.html")
    page.goto(f"{hub.url}/user/{user}/files/{html.relative_to(home).as_posix()}", wait_until="load")
    text = page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / f"{user}-feedback.png"))
    page.close()
    return text


@contextlib.contextmanager
def _class_repository(base: Path) -> Iterator[str]:
    """A class repository (the released warm-up) served read-only by ``git daemon`` on loopback; yields its URL.
    (A daemon, not a file:// path: git refuses to clone a local repository owned by another user.)"""
    base = Path(tempfile.mkdtemp(prefix="class-", dir=base))  # one per use: two tests serve it
    work, served = base / "class-work", base / "git"
    shutil.copytree(REPO / "lessons" / WARMUP, work / "lessons" / WARMUP)
    (work / "README.md").write_text("the class copy\n")
    git = ["git", "-c", "user.name=course", "-c", "user.email=course@example.invalid"]
    _sh(*git, "init", "-q", "-b", "main", str(work))
    _sh(*git, "-C", str(work), "add", "-A")
    _sh(*git, "-C", str(work), "commit", "-q", "-m", "the class copy")
    _sh("git", "clone", "-q", "--bare", str(work), str(served / "class.git"))
    port = _free_port()
    daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={served}",
                               "--listen=127.0.0.1", f"--port={port}", str(served)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while _sh("git", "ls-remote", f"git://127.0.0.1:{port}/class.git", check=False).returncode != 0:
            assert time.monotonic() < deadline and daemon.poll() is None, "git daemon did not start"
            time.sleep(0.3)
        yield f"git://127.0.0.1:{port}/class.git"
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_a_lesson_link_opens_the_lesson_on_the_hub(hub: Hub, tmp_path: Path) -> None:
    """`tlcourse links` (nbgitpuller): a student clicks the lesson's link, logs in, and lands in that lesson, cloned
    into their home; a second click keeps their edits."""
    from playwright.sync_api import sync_playwright

    from tlcourse.launch import gitpuller_url

    student = STUDENTS[0]
    lesson = f"lessons/{WARMUP}/{WARMUP}.ipynb"
    home = Path(pwd.getpwnam(student).pw_dir)
    with _class_repository(hub.base) as repo, sync_playwright() as pw:
        link = gitpuller_url(hub.url, repo, "main", lesson, target="tlcourse")
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(link, wait_until="domcontentloaded", timeout=60_000)  # not logged in: the hub asks first
            page.fill("input[name=username]", student)
            page.fill("input[name=password]", PASSWORD)
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_url(f"**/user/{student}/lab/tree/tlcourse/{lesson}*", timeout=180_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                   f"&& window.jupyterapp.shell.currentWidget.context.path === 'tlcourse/{lesson}'",
                                   timeout=120_000)
            cloned = home / "tlcourse" / lesson
            assert cloned.is_file() and cloned.stat().st_uid == pwd.getpwnam(student).pw_uid
            edited = cloned.read_text() + "\n"  # the student's own change
            cloned.write_text(edited)
            page.goto(link, wait_until="domcontentloaded", timeout=60_000)  # a second click: an update, no clobber
            page.wait_for_url(f"**/user/{student}/lab/tree/tlcourse/{lesson}*", timeout=180_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=120_000)
            assert cloned.read_text() == edited
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{student}-link.png"))
        finally:
            browser.close()
            # leave the student's home as the class round expects it: no clone, no lab layout with its tab open
            shutil.rmtree(home / "tlcourse", ignore_errors=True)
            for workspace in (home / ".jupyter" / "lab" / "workspaces").glob("*.jupyterlab-workspace"):
                workspace.unlink()


def test_an_lms_launch_logs_in_and_opens_the_lesson(hub: Hub, tmp_path: Path) -> None:
    """LTI 1.3 (tlcourse.hublti on jupyterhub-ltiauthenticator) against a local platform: a student who never had an
    account clicks the lesson in the LMS, gets a Unix account in the students' group, and lands in that lesson; an
    instructor's launch makes a hub admin; a launch from another LMS course and a forged id_token are refused.
    The hub serves two nbgrader courses: each LMS course is one, an instructor (not root) releases into the
    exchange folders setup made, and a student's nbgrader lists the courses they launched from, and only those."""
    from playwright.sync_api import sync_playwright
    from support.lti_platform import Member, Platform

    from tlcourse.launch import gitpuller_url

    platform = Platform(client_id="tool-1000", deployment_id="dep-1", redirect_uris=[], members=[
        Member("u-carol", f"{LTI_STUDENT}@uni.example", "Carol"),
        Member("u-dana", f"{LTI_INSTRUCTOR}@uni.example", "Dana", role="instructor")]).start()
    platform.context_id = next(iter(LTI_COURSES))
    _sh(str(hub.env_dir / "bin" / "python"), "-m", "tlcourse.hubcourses", str(hub.exchange),  # as setup.sh runs it
        f"{PREFIX}-instructors", *LTI_COURSES.values())
    for course in LTI_COURSES.values():
        _release_as_instructor(hub, course)
    process = None
    lesson = f"lessons/{WARMUP}/{WARMUP}.ipynb"
    try:
        process, url, _ = _start_hub(hub.base / "hub-lti.log", hub.env_dir, hub.exchange, hub.base / "state-lti", {
            "TLCOURSE_HUB_AUTH": "lti13", "TLCOURSE_LTI_ISSUER": platform.issuer,
            "TLCOURSE_LTI_CLIENT_ID": platform.client_id, "TLCOURSE_LTI_AUTHORIZE_URL": platform.endpoint("authorize"),
            "TLCOURSE_LTI_JWKS_URL": platform.endpoint("jwks"),
            "TLCOURSE_LTI_CONTEXTS": ",".join(f"{k}={v}" for k, v in LTI_COURSES.items()),
            "TLCOURSE_HUB_COURSES": ",".join(LTI_COURSES.values()),
            "TLCOURSE_LTI_DEPLOYMENT_IDS": platform.deployment_id, "TLCOURSE_LTI_EMAIL_DOMAINS": "uni.example"})
        platform.tool_login_url = f"{url}/hub/lti13/oauth_login"
        platform.redirect_uris = [f"{url}/hub/lti13/oauth_callback"]
        with _class_repository(hub.base) as repo, sync_playwright() as pw:
            platform.target_link_uri = gitpuller_url(url, repo, "main", lesson, target="tlcourse")
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                _lti_launches(browser, platform, url, lesson)
            finally:
                browser.close()
    finally:
        platform.stop()
        if process is not None:
            _stop_hub(process)
    assert platform.errors == [], platform.errors
    account = pwd.getpwnam(LTI_STUDENT)
    assert f"{PREFIX}-students" in _sh("id", "-nG", LTI_STUDENT).stdout.split()
    assert oct(os.stat(account.pw_dir).st_mode & 0o777) == "0o700"
    cloned = Path(account.pw_dir) / "tlcourse" / lesson
    assert cloned.is_file() and cloned.stat().st_uid == account.pw_uid
    dana = _sh("id", "-nG", LTI_INSTRUCTOR).stdout.split()
    assert f"{PREFIX}-students" in dana and f"{PREFIX}-instructors" not in dana, "the role of the last launch"


def _release_as_instructor(hub: Hub, course: str) -> None:
    """The instructor (no root) releases the warm-up into ``course``'s root-owned exchange folders, with the
    servers' nbgrader config for several courses."""
    root = Path(tempfile.mkdtemp(prefix=f"release-{course}-", dir=hub.base))
    (root / "release" / WARMUP).mkdir(parents=True)
    shutil.copyfile(REPO / "lessons" / WARMUP / f"{WARMUP}.ipynb", root / "release" / WARMUP / f"{WARMUP}.ipynb")
    _sh("chown", "-R", f"{INSTRUCTOR}:{INSTRUCTOR}", str(root))
    env = {"PATH": f"{hub.env_dir}/bin:/usr/bin:/bin", "HOME": f"/home/{INSTRUCTOR}",
           "TLCOURSE_EXCHANGE_ROOT": str(hub.exchange), "TLCOURSE_HUB_COURSES": ",".join(LTI_COURSES.values())}
    _sh("nbgrader", "release_assignment", WARMUP, "--course", course, f"--CourseDirectory.root={root}",
        user=INSTRUCTOR, cwd=root, env=env)
    assert (hub.exchange / course / "outbound" / WARMUP / f"{WARMUP}.ipynb").is_file()


def _lms_launch(browser, platform, user: str, lesson: str):
    page = browser.new_context().new_page()
    page.goto(f"{platform.url}/launch?user={user}", wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_url(f"**/user/{user}/lab/tree/tlcourse/{lesson}*", timeout=180_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           f"&& window.jupyterapp.shell.currentWidget.context.path === 'tlcourse/{lesson}'",
                           timeout=120_000)
    return page


def _nbgrader_courses(page, url: str, user: str) -> list[str]:
    """The courses nbgrader's Assignments tab offers ``user`` (their server's ``/courses``, with their cookies)."""
    answer = page.context.request.get(f"{url}/user/{user}/courses", timeout=120_000)
    assert answer.ok, (answer.status, answer.text()[-2000:])
    body = answer.json()
    assert body["success"], body
    return body["value"]


def _lti_launches(browser, platform, url: str, lesson: str) -> None:
    student = _lms_launch(browser, platform, LTI_STUDENT, lesson)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    student.screenshot(path=str(ARTIFACTS / "lti-student-lesson.png"))
    first, second = LTI_COURSES
    assert _nbgrader_courses(student, url, LTI_STUDENT) == [LTI_COURSES[first]], "only the course she launched from"
    assert student.goto(f"{url}/hub/admin", wait_until="domcontentloaded").status == 403, "a student is no admin"
    platform.context_id = second  # carol opens the lesson from her other LMS course too
    again = _lms_launch(browser, platform, LTI_STUDENT, lesson)
    platform.context_id = first
    assert _nbgrader_courses(again, url, LTI_STUDENT) == sorted(LTI_COURSES.values())
    teacher = browser.new_context().new_page()
    teacher.goto(f"{platform.url}/launch?user={LTI_INSTRUCTOR}", wait_until="domcontentloaded", timeout=60_000)
    teacher.wait_for_url(f"**/user/{LTI_INSTRUCTOR}/**", timeout=180_000)
    assert teacher.goto(f"{url}/hub/admin", wait_until="domcontentloaded").status == 200, "an instructor is admin"
    assert f"{PREFIX}-instructors" in _sh("id", "-nG", LTI_INSTRUCTOR).stdout.split()
    carol, dana = platform.members
    refusals = (({"context_id": "course-9999"}, "not for this hub"),
                ({"forge": True}, "Signature verification failed"),
                ({"deployment_id": "dep-9"}, "is not this hub"))
    for change, expected in refusals:
        _refused(browser, platform, platform, change, expected)
    # carol sets her LMS e-mail to dana's: the name stays with the LMS user of its first launch
    _refused(browser, platform, carol, {"email": dana.email}, "belongs to another LMS user")
    # dana is no longer an instructor: her next launch takes the instructors' group and the admin page away
    dana.role = "learner"
    teacher = browser.new_context().new_page()
    teacher.goto(f"{platform.url}/launch?user={LTI_INSTRUCTOR}", wait_until="domcontentloaded", timeout=60_000)
    teacher.wait_for_url(f"**/user/{LTI_INSTRUCTOR}/**", timeout=180_000)
    assert teacher.goto(f"{url}/hub/admin", wait_until="domcontentloaded").status == 403


def _refused(browser, platform, target, change: dict, expected: str) -> None:
    """A launch with ``change`` made to ``target`` (the platform or a member) is refused at the callback."""
    stranger = browser.new_context().new_page()
    saved = {k: getattr(target, k) for k in change}
    try:
        for key, value in change.items():
            setattr(target, key, value)
        user = LTI_STUDENT if target is platform else target.email.split("@")[0]  # the platform's link for them
        with stranger.expect_response(lambda r: "/hub/lti13/oauth_callback" in r.url, timeout=60_000) as answer:
            stranger.goto(f"{platform.url}/launch?user={user}", wait_until="domcontentloaded")
        assert answer.value.status in (400, 401, 403), (change, answer.value.status)
        assert expected in answer.value.text(), (change, answer.value.text()[-2000:])
    finally:
        for key, value in saved.items():
            setattr(target, key, value)


_BOMB = """async (code) => {
  const kernel = await window.jupyterapp.serviceManager.kernels.startNew({name: 'python3'});
  const future = kernel.requestExecute({code});
  const timeout = new Promise(resolve => setTimeout(() => resolve('no reply'), 90000));
  const reply = await Promise.race([future.done.then(r => r.content.status, e => 'failed: ' + e), timeout]);
  return reply;
}"""


def test_a_memory_bomb_kills_only_its_own_kernel(hub: Hub, tmp_path: Path) -> None:
    """Each server lives in its own cgroup with the hub's mem_limit (tlcourse.hubspawner.LimitedSpawner): a cell
    that allocates far more than the limit is killed by the OOM killer inside that student's group; their server
    answers on, and the other student's kernel runs untouched."""
    from playwright.sync_api import sync_playwright

    from tlcourse.grading.sandbox import Cgroup
    from tlcourse.hubspawner import GROUP, cgroup_name

    bomber, neighbour = STUDENTS
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            pages = {}
            for user in (bomber, neighbour):
                pages[user] = browser.new_context().new_page()
                _login(pages[user], hub, user)
            root = Path("/sys/fs/cgroup")  # v1: one folder per controller; v2: one folder
            groups = {u: [p for p in (root / "memory" / GROUP / cgroup_name(u), root / "pids" / GROUP / cgroup_name(u),
                                      root / "cpu" / GROUP / cgroup_name(u), root / GROUP / cgroup_name(u))
                          if p.is_dir()] for u in (bomber, neighbour)}
            assert all(groups.values()), f"each server in a cgroup of its own: {groups}"
            limit = [p / f for p in groups[bomber] for f in ("memory.limit_in_bytes", "memory.max")
                     if (p / f).is_file()]
            assert limit and int(limit[0].read_text()) == MEM_LIMIT_MB * 1024 * 1024
            reply = pages[bomber].evaluate(_BOMB, f"hog = bytearray({3 * MEM_LIMIT_MB} * 1024 * 1024)")
            assert reply != "ok", "the allocation cannot succeed under the limit"
            assert Cgroup(groups[bomber]).out_of_memory(), "the OOM killer acted inside the bomber's group"
            assert not Cgroup(groups[neighbour]).out_of_memory()
            alive = pages[bomber].evaluate("async () => { await window.jupyterapp.serviceManager.kernels"
                                           ".refreshRunning(); return 'answers'; }")
            assert alive == "answers", "the bomber's server survives its kernel"
            assert pages[neighbour].evaluate(_BOMB, "x = sum(range(10**6))") == "ok", "the neighbour's kernel runs"
        finally:
            browser.close()


def test_a_class_on_jupyterhub(hub: Hub, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    # the instructor releases the lesson through the exchange
    hub.as_instructor(f"{hub.env_dir}/bin/nbgrader", "generate_assignment", WARMUP, "--force")
    hub.as_instructor(f"{hub.env_dir}/bin/nbgrader", "release_assignment", WARMUP, "--force")
    answers = {STUDENTS[0]: solved(WARMUP), STUDENTS[1]: fill(released_nb(WARMUP), wrong_sources(WARMUP))}
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                        headless=True, args=CHROMIUM_ARGS,
                                                        viewport={"width": 1400, "height": 900})
        try:
            started = time.monotonic()
            for student in STUDENTS:
                _student_round(hub, browser, student, answers[student])
                browser.clear_cookies()
            submitted = time.monotonic()
            # the instructor collects; grading runs as root (the sandbox's limits need it); feedback goes out
            hub.as_instructor(f"{hub.env_dir}/bin/nbgrader", "collect", WARMUP)
            out = tmp_path / "grades.csv"
            graded = run_tlcourse("grade", str(hub.course / "course" / "submitted"), "--assignment", WARMUP,
                                  "--out", str(out), "--root", str(hub.course),
                                  *(["--no-sandbox"] if sandbox_problem() else []), timeout=900)
            assert graded.returncode == 0, graded.stdout + graded.stderr
            _sh("chown", "-R", f"{INSTRUCTOR}:{INSTRUCTOR}", str(hub.course))
            hub.as_instructor(f"{hub.env_dir}/bin/nbgrader", "release_feedback", WARMUP)
            pages = {}
            for student in STUDENTS:
                browser.clear_cookies()
                pages[student] = _fetch_feedback(hub, browser, student)
            hub.timings["submit to feedback, 2 students"] = time.monotonic() - submitted
            hub.timings["students' rounds (login, fetch, submit)"] = submitted - started
        finally:
            browser.close()
    _, rows = read_csv(out)
    assert (rows[STUDENTS[0]]["auto_score"], rows[STUDENTS[1]]["auto_score"]) == ("6", "2"), rows
    assert "6.0" in pages[STUDENTS[0]] and "2.0" in pages[STUDENTS[1]], "each student sees their own score"
    assert "count, do not hard-code" not in pages[STUDENTS[1]], "hidden tests stay hidden in feedback"
    # every user runs the course's environment and package (installed where they can read it, not in a checkout)
    probe = _sh(f"{hub.env_dir}/bin/python", "-c", "import tlcourse, tlcourse.grading; print(tlcourse.__file__)",
                user=STUDENTS[0], cwd=Path("/tmp"), env={"HOME": "/tmp", "PATH": "/usr/bin:/bin"})
    assert str(hub.env_dir) in probe.stdout, probe.stdout
    # one student cannot read the other's work: not their home, not their submission in the exchange
    bob_home = Path(pwd.getpwnam(STUDENTS[1]).pw_dir)
    assert _sh("cat", str(bob_home / WARMUP / f"{WARMUP}.ipynb"), user=STUDENTS[0], check=False).returncode != 0
    assert _sh("ls", str(hub.exchange / "tlcourse" / "inbound"), user=STUDENTS[0], check=False).returncode != 0
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    (REPO / "test-artifacts" / "hub-timings.json").write_text(json.dumps(hub.timings, indent=1))
    print("hub timings:", {k: round(v, 1) for k, v in hub.timings.items()})
