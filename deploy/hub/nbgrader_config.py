# nbgrader settings for every user's server on the hub (installed as <env>/etc/jupyter/nbgrader_config.py):
# the course (one, "tlcourse"; or, with TLCOURSE_HUB_COURSES set by the hub, each user's own from their hub groups)
# and the shared exchange folder. The instructor's course folder has the full nbgrader_config.py of the repository
# (solutions/, lessons/, gradebook, timeouts); students only need these.
import os

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

if os.environ.get("TLCOURSE_HUB_COURSES"):  # several courses on the hub: a user's are their hub groups
    c.Authenticator.plugin_class = "nbgrader.auth.JupyterHubAuthPlugin"
    c.Exchange.path_includes_course = True  # ~/<course>/<assignment>: two courses may both have a 00_warmup
    c.CourseDirectory.groupshared = True  # the course folders belong to root and the instructors' group
else:
    c.CourseDirectory.course_id = "tlcourse"
c.Exchange.root = os.environ.get("TLCOURSE_EXCHANGE_ROOT", "/srv/nbgrader/exchange")
