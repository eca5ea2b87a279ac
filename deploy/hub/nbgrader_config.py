# nbgrader settings for every user's server on the hub (installed as <env>/etc/jupyter/nbgrader_config.py):
# the course id and the shared exchange folder. The instructor's course folder has the full nbgrader_config.py
# of the repository (solutions/, lessons/, gradebook, timeouts); students only need these two.
import os

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "tlcourse"
c.Exchange.root = os.environ.get("TLCOURSE_EXCHANGE_ROOT", "/srv/nbgrader/exchange")
