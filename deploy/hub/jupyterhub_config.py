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

c.JupyterHub.bind_url = os.environ.get("TLCOURSE_HUB_URL", "http://:8000")  # put TLS in front (nginx, Caddy)
c.JupyterHub.hub_port = int(os.environ.get("TLCOURSE_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = os.environ.get("TLCOURSE_HUB_PROXY_API", "http://127.0.0.1:8001")
c.JupyterHub.db_url = f"sqlite:///{STATE}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{STATE}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = f"{STATE}/jupyterhub-proxy.pid"

# who may log in: members of the two Unix groups, with their Unix passwords (PAM); instructors are hub admins
if os.environ.get("TLCOURSE_HUB_AUTH", "pam") == "dummy":  # tests only: one shared password, listed users
    c.JupyterHub.authenticator_class = "dummy"
    c.DummyAuthenticator.password = os.environ["TLCOURSE_HUB_PASSWORD"]
    c.Authenticator.allowed_users = set(os.environ["TLCOURSE_HUB_USERS"].split(","))
    c.Authenticator.admin_users = set(os.environ.get("TLCOURSE_HUB_ADMINS", "").split(",")) - {""}
else:
    c.JupyterHub.authenticator_class = "pam"
    c.PAMAuthenticator.allowed_groups = {STUDENTS, INSTRUCTORS}
    c.PAMAuthenticator.admin_groups = {INSTRUCTORS}

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
c.Spawner.cpu_limit = float(os.environ.get("TLCOURSE_HUB_CPU_LIMIT", "2"))  # cores' worth of CPU time per user
c.Spawner.mem_limit = os.environ.get("TLCOURSE_HUB_MEM_LIMIT", "6G")  # the server, its kernels and their threads
c.LimitedSpawner.max_processes = 512
