#!/usr/bin/env bash
# One-server JupyterHub for tlcourse, as root on Debian/Ubuntu (Python 3.11 with venv, Node.js for the proxy).
#   sudo bash deploy/hub/setup.sh           the course environment (the lock + the package + JupyterHub)
#   sudo bash deploy/hub/setup.sh --light   Jupyter, nbgrader, JupyterHub and the package, without its heavy
#                                           dependencies (no torch: for tests)
# Idempotent. Paths from the environment: TLCOURSE_HUB_ENV (/opt/tlcourse/venv), TLCOURSE_EXCHANGE_ROOT
# (/srv/nbgrader/exchange), TLCOURSE_HUB_STATE (/srv/jupyterhub), PYTHON (/usr/bin/python3.11), and the groups
# TLCOURSE_HUB_STUDENTS_GROUP (tlcourse-students), TLCOURSE_HUB_INSTRUCTORS_GROUP (tlcourse-instructors), and
# TLCOURSE_HUB_COURSES (several nbgrader course ids, e.g. ml101,ml202: each gets its exchange folders).
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
env_dir="${TLCOURSE_HUB_ENV:-/opt/tlcourse/venv}"
exchange="${TLCOURSE_EXCHANGE_ROOT:-/srv/nbgrader/exchange}"
state="${TLCOURSE_HUB_STATE:-/srv/jupyterhub}"
python="${PYTHON:-/usr/bin/python3.11}"  # a system Python every user can run (not one under /root)

command -v configurable-http-proxy >/dev/null || npm install -g configurable-http-proxy
command -v bwrap >/dev/null || echo "note: install bubblewrap (apt install bubblewrap) on the machine that grades"

# the environment every user's server runs: readable by all, writable by root only
"$python" -m venv "$env_dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
grep -hv '^-r ' "$src/requirements.txt" "$src/requirements-dev.txt" > "$work/pins.txt"  # both locks' pins
if [ "${1:-}" = "--light" ]; then
  "$env_dir/bin/python" -m pip install --quiet -c "$work/pins.txt" jupyterhub jupyterlab notebook nbgrader nbgitpuller \
    jupyterhub-ltiauthenticator
else
  "$env_dir/bin/python" -m pip install --quiet -r "$src/requirements.txt" -c "$work/pins.txt" jupyterhub \
    jupyterhub-ltiauthenticator
fi
# the package itself, built from a copy: a build in the checkout would leave build/ behind in it
mkdir "$work/package"
cp -r "$src/pyproject.toml" "$src/README.md" "$src/tlcourse" "$work/package/"
"$env_dir/bin/python" -m pip install --quiet --no-deps "$work/package"
"$env_dir/bin/jupyter" labextension enable --level=sys_prefix nbgrader >/dev/null
"$env_dir/bin/tlcourse" lab-settings --prefix "$env_dir" >/dev/null  # no news prompt, no update check
mkdir -p "$env_dir/etc/jupyter"
install -m 644 "$src/deploy/hub/nbgrader_config.py" "$env_dir/etc/jupyter/nbgrader_config.py"
chmod -R a+rX "$env_dir"

# the nbgrader exchange (everyone writes; nbgrader keeps students out of each other's submissions; sticky, so that
# nobody renames a course's folder away to put their own in its place), the hub's state
mkdir -p "$exchange" "$state"
chmod 1777 "$exchange"
chmod 0700 "$state"
groupadd -f "${TLCOURSE_HUB_STUDENTS_GROUP:-tlcourse-students}"
groupadd -f "${TLCOURSE_HUB_INSTRUCTORS_GROUP:-tlcourse-instructors}"
if [ -n "${TLCOURSE_HUB_COURSES:-}" ]; then  # several courses: their exchange folders before any student can make them
  "$env_dir/bin/python" -m tlcourse.hubcourses "$exchange" "${TLCOURSE_HUB_INSTRUCTORS_GROUP:-tlcourse-instructors}" \
    ${TLCOURSE_HUB_COURSES//,/ } >/dev/null
fi
echo "hub environment: $env_dir · exchange: $exchange · state: $state"
echo "add people:  useradd -m -K HOME_MODE=0700 -G tlcourse-students alice   (instructors: -G tlcourse-instructors)"
echo "start:       $env_dir/bin/jupyterhub -f $src/deploy/hub/jupyterhub_config.py"
