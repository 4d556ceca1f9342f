"""Where the app's files are: templates, seeds and migrations, and the instance folder.

templates/, seeds/ and migrations/ sit at the top of the repository. A wheel carries them
inside the package as directory/_data/... (pyproject.toml maps them there), so an installed
app finds them beside its code and runs from any working directory; a checkout (or an
editable install of one) has no _data and reads the repository's folders.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE.parent
_SHIPPED = PACKAGE / "_data"


def folder(name: str) -> Path:
    """The folder `templates`, `seeds` or `migrations`, wherever this install keeps it."""
    shipped = _SHIPPED / name
    return shipped if shipped.is_dir() else _CHECKOUT / name


def is_checkout() -> bool:
    return not _SHIPPED.is_dir() and (_CHECKOUT / "pyproject.toml").is_file()


def instance_path() -> Path:
    """INSTANCE_PATH if set; else instance/ in a checkout, or <prefix>/var/directory-instance
    (Flask's own place for an installed package) so site-packages is never written to."""
    configured = os.environ.get("INSTANCE_PATH", "")
    if configured:
        return Path(configured).expanduser().absolute()
    if is_checkout():
        return _CHECKOUT / "instance"
    return Path(sys.prefix) / "var" / "directory-instance"
