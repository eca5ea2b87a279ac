"""JupyterLab settings the course ships, so that a student's first minutes are calm and offline: no prompt about
Jupyter news over the lesson, no check for a newer JupyterLab, no extension manager that queries PyPI.

They are *overrides* (``{prefix}/share/jupyter/lab/settings/overrides.json``): JupyterLab's defaults for everyone
who runs it from that environment, which a student may still change in the Settings editor. ``make setup``, the
hub's ``setup.sh`` and the image call ``tlcourse lab-settings``.

Example:
    >>> import json, tempfile
    >>> path = install_lab_settings(Path(tempfile.mkdtemp()))
    >>> json.loads(path.read_text())["@jupyterlab/apputils-extension:notification"]["fetchNews"]
    'false'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["LAB_OVERRIDES", "install_lab_settings", "overrides_path"]

#: plugin id -> settings (JupyterLab 4: ``fetchNews`` is the string "true"/"false"/"none", "none" asks the user)
LAB_OVERRIDES: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
}


def overrides_path(prefix: Path | str = sys.prefix) -> Path:
    """Where JupyterLab run from the environment ``prefix`` reads its overrides."""
    return Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def install_lab_settings(prefix: Path | str = sys.prefix) -> Path:
    """Merge :data:`LAB_OVERRIDES` into the environment's ``overrides.json`` (other plugins' entries kept); return
    its path. Raises ``ValueError`` when the existing file is not a JSON object."""
    path = overrides_path(prefix)
    current = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if not isinstance(current, dict):
        raise ValueError(f"{path} is not a JSON object: fix or remove it, then run `tlcourse lab-settings` again")
    for plugin, settings in LAB_OVERRIDES.items():
        current[plugin] = {**current.get(plugin, {}), **settings}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    return path
