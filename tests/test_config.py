import re
import subprocess
import sys
from pathlib import Path

import pytest

from directory.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Settings", 1)[1]
    missing = [name for name in SETTINGS if f"`{name}`" not in table]
    assert not missing, f"Settings missing from README's Settings table: {missing}"


def test_the_code_reads_no_undocumented_environment_variable() -> None:
    names: set[str] = set()
    for path in (ROOT / "directory").rglob("*.py"):
        source = path.read_text()
        names |= set(re.findall(r"""_env\(\s*["']([A-Z_]+)["']""", source))
        names |= set(re.findall(r"""_(?:int|float)\(\s*["']([A-Z_]+)["']""", source))
        names |= set(re.findall(r"""environ(?:\.get)?[\[(]\s*["']([A-Z_]+)["']""", source))
    undocumented = names - set(SETTINGS) - {"FLASK_DEBUG"}
    assert names, "the scan found nothing: the patterns are out of date"
    assert not undocumented, f"Read from the environment but not in SETTINGS: {undocumented}"


def _start(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    code = "from directory import create_app; create_app(); print('started')"
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, cwd=ROOT, capture_output=True, text=True
    )


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    result = _start({"DIRECTORY_ENV": "production"}, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_starts_with_a_secret_key(tmp_path: Path) -> None:
    result = _start({"SECRET_KEY": "x" * 40, "PUBLIC_URL": "https://ldn.example.org"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


def test_bad_number_setting_is_one_clear_line(tmp_path: Path) -> None:
    result = _start(
        {"SECRET_KEY": "x" * 40, "PUBLIC_URL": "https://a.example", "MAX_CONTENT_LENGTH": "lots"},
        tmp_path,
    )
    assert result.returncode != 0
    assert "MAX_CONTENT_LENGTH must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_switch_setting_is_one_clear_line(tmp_path: Path) -> None:
    result = _start(
        {"SECRET_KEY": "x" * 40, "PUBLIC_URL": "https://a.example", "RATELIMIT_ENABLED": "no?"},
        tmp_path,
    )
    assert result.returncode != 0
    assert "RATELIMIT_ENABLED must be true or false" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_public_url_with_a_path_is_one_clear_line(tmp_path: Path) -> None:
    result = _start({"SECRET_KEY": "x" * 40, "PUBLIC_URL": "ldn.example.org/app"}, tmp_path)
    assert result.returncode != 0
    assert "PUBLIC_URL must be an address like https://" in result.stderr
    assert "Traceback" not in result.stderr


def test_ratelimit_enabled_false_switches_limits_off(monkeypatch, tmp_path: Path) -> None:
    from directory.config import from_environment

    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("PUBLIC_URL", "https://ldn.example.org")
    assert from_environment(tmp_path)["RATELIMIT_ENABLED"] is True
    monkeypatch.setenv("RATELIMIT_ENABLED", "false")
    assert from_environment(tmp_path)["RATELIMIT_ENABLED"] is False


def test_cookies_are_secure_outside_development(app) -> None:
    from directory.config import from_environment

    cfg = from_environment(Path(app.instance_path), testing=True)
    assert cfg["SESSION_COOKIE_SECURE"] is True
    assert cfg["SESSION_COOKIE_HTTPONLY"] is True
    assert cfg["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_default_database_is_a_file_in_the_instance_folder(monkeypatch, app) -> None:
    from directory.config import from_environment

    monkeypatch.delenv("DATABASE_URL", raising=False)
    cfg = from_environment(Path(app.instance_path), testing=True)
    assert cfg["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{Path(app.instance_path) / 'directory.db'}"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_postgres_urls_use_psycopg(monkeypatch, app, given: str, expected: str) -> None:
    from directory.config import from_environment

    monkeypatch.setenv("DATABASE_URL", given)
    assert (
        from_environment(Path(app.instance_path), testing=True)["SQLALCHEMY_DATABASE_URI"]
        == expected
    )


def test_the_readme_layout_names_every_module() -> None:
    """The README's picture of the tree is how a newcomer finds a rule's home: a module it
    doesn't name is a module nobody will find."""
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    named = set(re.findall(r"[\w./]+\.py\b|[\w/]+/", layout))
    missing = []
    for path in sorted((ROOT / "directory").rglob("*.py")):
        relative = path.relative_to(ROOT)
        if "static" in relative.parts:
            continue
        if len(relative.parts) == 2:  # directory/x.py
            ok = str(relative) in named
        else:  # a package's module: the package, and the module by name unless it's __init__
            package = "/".join(relative.parts[:-1]) + "/"
            ok = package in named and (path.name == "__init__.py" or path.name in layout)
            ok = ok or package == "directory/views/"  # one blueprint per audience, named in words
        if not ok:
            missing.append(str(relative))
    assert not missing, f"README's Layout doesn't name: {missing}"
