# JupyterHub on one server for a class of up to ~50: real Unix users, the nbgrader exchange in a shared folder,
# instructors in a Unix group. Start it as root (it starts each user's server as that user):
#     /opt/tlcourse/venv/bin/jupyterhub -f /opt/tlcourse/src/deploy/hub/jupyterhub_config.py
# Every path and choice can be set through the environment (the test suite runs this file with its own values).
import os

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

ENV = os.environ.get("TLCOURSE_HUB_ENV", "/opt/tlcourse/venv")  # the course's Python environment, readable by all
STATE = os.environ.get("TLCOURSE_HUB_STATE", "/srv/jupyterhub")  # the hub's database and cookie secret (root only)
EXCHANGE = os.environ.get("TLCOURSE_EXCHANGE_ROOT", "/srv/nbgrader/exchange")
STUDENTS = os.environ.get("TLCOURSE_HUB_STUDENTS_GROUP", "tlcourse-students")
INSTRUCTORS = os.environ.get("TLCOURSE_HUB_INSTRUCTORS_GROUP", "tlcourse-instructors")
# several nbgrader courses on this hub (tlcourse.hubcourses): their ids, e.g. "ml101,ml202"; unset: one course,
# "tlcourse". With several, each user's courses are their hub groups (nbgrader-<course>, formgrade-<course>), which
# the LTI login keeps (with PAM an admin sets them on the admin page); setup.sh makes each course's exchange folders
# and the hub refuses to start if they are missing or changed (a student's folder in a course's place).
COURSES = os.environ.get("TLCOURSE_HUB_COURSES", "")
if COURSES:
    from tlcourse.hubcourses import check_exchange, parse_course_ids

    COURSES = ",".join(parse_course_ids(COURSES))
    check_exchange(EXCHANGE, COURSES.split(","))

# TLS: the hub's own (a certificate and key, e.g. from certbot) or a proxy in front (Caddy, nginx; INSTRUCTORS.md)
CERT, KEY = os.environ.get("TLCOURSE_HUB_SSL_CERT", ""), os.environ.get("TLCOURSE_HUB_SSL_KEY", "")
if bool(CERT) != bool(KEY):
    raise ValueError("set both TLCOURSE_HUB_SSL_CERT and TLCOURSE_HUB_SSL_KEY, or neither")
if CERT:
    c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = CERT, KEY
c.JupyterHub.bind_url = os.environ.get("TLCOURSE_HUB_URL", "https://:443" if CERT else "http://:8000")
HTTPS = CERT or c.JupyterHub.bind_url.startswith("https") or os.environ.get("TLCOURSE_HUB_BEHIND_TLS") == "1"
c.JupyterHub.hub_port = int(os.environ.get("TLCOURSE_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = os.environ.get("TLCOURSE_HUB_PROXY_API", "http://127.0.0.1:8001")
c.JupyterHub.db_url = f"sqlite:///{STATE}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{STATE}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = f"{STATE}/jupyterhub-proxy.pid"

# who may log in. "pam" (default): members of the two Unix groups, with their Unix passwords; instructors are hub
# admins. "lti13": launches from the LMS (LTI 1.3, tlcourse.hublti): accounts made on first launch, in the Unix
# group of their LTI role; instructors are admins. Register the hub in the LMS as an LTI 1.3 tool with
#   login URL  https://HUB/hub/lti13/oauth_login   redirect URI  https://HUB/hub/lti13/oauth_callback
# (its JSON configuration is served at https://HUB/hub/lti13/config), then set the platform's values below.
AUTH = os.environ.get("TLCOURSE_HUB_AUTH", "pam")
if AUTH == "dummy":  # tests only: one shared password, listed users
    c.JupyterHub.authenticator_class = "dummy"
    c.DummyAuthenticator.password = os.environ["TLCOURSE_HUB_PASSWORD"]
    c.Authenticator.allowed_users = set(os.environ["TLCOURSE_HUB_USERS"].split(","))
    c.Authenticator.admin_users = set(os.environ.get("TLCOURSE_HUB_ADMINS", "").split(",")) - {""}
elif AUTH == "lti13":
    c.JupyterHub.authenticator_class = "tlcourse.hublti.CourseLTI13Authenticator"
    lti = c.CourseLTI13Authenticator
    lti.issuer = os.environ["TLCOURSE_LTI_ISSUER"]  # e.g. https://canvas.instructure.com
    lti.client_id = set(os.environ["TLCOURSE_LTI_CLIENT_ID"].split(","))  # the developer key's id
    lti.authorize_url = os.environ["TLCOURSE_LTI_AUTHORIZE_URL"]  # e.g. https://sso.canvaslms.com/api/lti/authorize_redirect
    lti.jwks_endpoint = os.environ["TLCOURSE_LTI_JWKS_URL"]  # e.g. https://sso.canvaslms.com/api/lti/security/jwks
    lti.username_source = os.environ.get("TLCOURSE_LTI_USERNAME", "email")  # email | sub | sourcedid
    lti.username_prefix = os.environ.get("TLCOURSE_LTI_USERNAME_PREFIX", "")
    lti.email_domains = set(os.environ.get("TLCOURSE_LTI_EMAIL_DOMAINS", "").split(",")) - {""}  # e.g. uni.example
    from tlcourse.hubcourses import DEFAULT_COURSE, parse_courses

    hub_courses = COURSES.split(",") if COURSES else [DEFAULT_COURSE]
    # the LMS course ids, each with its nbgrader course: "8841=ml101,9012=ml202" (a bare id: the first course)
    lti.contexts = parse_courses(os.environ.get("TLCOURSE_LTI_CONTEXTS", ""), default=hub_courses[0])
    if not lti.contexts:  # any course where the tool is deployed would make its teachers admins of this hub
        raise ValueError("TLCOURSE_LTI_CONTEXTS: name the LMS course(s) whose launches may log in")
    unknown = sorted(set(lti.contexts.values()) - set(hub_courses))
    if unknown:
        raise ValueError(f"TLCOURSE_LTI_CONTEXTS maps LMS courses to {unknown}, which this hub does not serve "
                         f"(TLCOURSE_HUB_COURSES: {hub_courses})")
    lti.deployment_ids = set(os.environ.get("TLCOURSE_LTI_DEPLOYMENT_IDS", "").split(",")) - {""}
    lti.students_group, lti.instructors_group = STUDENTS, INSTRUCTORS
    lti.bindings_file = f"{STATE}/lti-users.json"  # each name stays with the LMS user of its first launch
    lti.roles_file = f"{STATE}/lti-roles.json"  # each user's role in each course, from their latest launch there
    lti.role_days = int(os.environ.get("TLCOURSE_LTI_ROLE_DAYS", "150"))  # a role no launch renewed expires
    if HTTPS:  # the LMS posts the launch from its own site: the login's state cookie must cross sites
        c.JupyterHub.tornado_settings = {"cookie_options": {"SameSite": "None", "Secure": True}}
        lti.uri_scheme = "https"  # behind a proxy the request says http
elif AUTH == "pam":
    c.JupyterHub.authenticator_class = "pam"
    c.PAMAuthenticator.allowed_groups = {STUDENTS, INSTRUCTORS}
    c.PAMAuthenticator.admin_groups = {INSTRUCTORS}
else:
    raise ValueError(f"TLCOURSE_HUB_AUTH={AUTH!r}: choose pam, lti13 (or dummy for tests)")

# each user's server: the course environment, JupyterLab with nbgrader's Assignments tab, the course settings
# LimitedSpawner: LocalProcessSpawner with each server (and its kernels) in a cgroup holding mem_limit, cpu_limit
# and a process cap, so one student's memory bomb kills their own kernel, not the host (tlcourse/hubspawner.py)
c.JupyterHub.spawner_class = "tlcourse.hubspawner.LimitedSpawner"
c.Spawner.cmd = [f"{ENV}/bin/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 120
c.Spawner.args = os.environ.get("TLCOURSE_HUB_SPAWNER_ARGS", "").split()  # e.g. the tests' browser hooks
c.Spawner.environment = {
    "TLCOURSE_EXCHANGE_ROOT": EXCHANGE,  # nbgrader_config.py in the environment reads it
    "TLCOURSE_DATA_MIRROR": os.environ.get("TLCOURSE_DATA_MIRROR", "/srv/tlcourse-data"),
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "JUPYTER_PATH": f"{ENV}/share/jupyter",
}
if COURSES:  # nbgrader_config.py then reads the user's courses from the hub: their token may read their groups
    c.Spawner.environment["TLCOURSE_HUB_COURSES"] = COURSES
    c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", "read:users:name!user",
                                     "read:users:groups!user"]
c.Spawner.cpu_limit = float(os.environ.get("TLCOURSE_HUB_CPU_LIMIT", "2"))  # cores' worth of CPU time per user
c.Spawner.mem_limit = os.environ.get("TLCOURSE_HUB_MEM_LIMIT", "6G")  # the server, its kernels and their threads
c.LimitedSpawner.max_processes = 512
