"""LDN Directory: pharmacies that make Low Dose Naltrexone well, and doctors who prescribe it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.exc import ArgumentError
from werkzeug.routing import IntegerConverter, Map

from .config import ConfigError, from_environment
from .json_provider import OrjsonProvider
from .resources import folder, instance_path


class BoundedInt(IntegerConverter):
    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(instance_path()),
        instance_relative_config=True,
        template_folder=str(folder("templates")),
    )
    app.json = OrjsonProvider(app)
    try:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        app.config.from_mapping(
            from_environment(Path(app.instance_path), testing=bool(test_config))
        )
    except (ConfigError, OSError) as exc:
        raise SystemExit(f"LDN Directory cannot start: {exc}") from None
    if test_config:
        app.config.from_mapping(test_config)

    from . import cli, db, errors, httpcache, i18n, requestlog, security, spatial, templating
    from .extensions import csrf, limiter, login_manager, migrate
    from .extensions import db as sqla
    from .geocoding import gazetteer_path, set_data_dir

    try:
        sqla.init_app(app)
    except ArgumentError:
        raise SystemExit(
            "LDN Directory cannot start: DATABASE_URL is not a database URL "
            "(e.g. sqlite:////path/to/file.db or postgresql+psycopg://user@host/dbname)."
        ) from None
    with app.app_context():
        db.configure_engine(sqla.engine)
        try:
            spatial.require_postgis(sqla.engine)
        except spatial.PostGISMissing as exc:
            raise SystemExit(f"LDN Directory cannot start: {exc}") from None
    # The gazetteer file lives in this app's instance folder (a process-wide setting).
    if gazetteer_path().parent != Path(app.instance_path):
        set_data_dir(app.instance_path)
    migrate.init_app(app, sqla, directory=str(folder("migrations")), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    security.init_app(app)
    httpcache.init_app(app)
    # After httpcache: its after_request then runs first, so a `lang` cookie it sets makes the
    # response personal (Flask runs after_request functions last-registered first).
    i18n.init_app(app)
    templating.init_app(app)
    errors.init_app(app)
    requestlog.init_app(app)
    cli.init_app(app)

    # calls nests itself in moderation's blueprint, so it is imported before moderation's is
    # registered.
    from .views import api, auth, calls, hsds, moderation, public, submit  # noqa: F401

    # Ids in URLs are bounded so a 30-digit id is a 404, not an overflow in the database driver.
    app.url_map.converters["int"] = BoundedInt

    for blueprint in (public.bp, submit.bp, auth.bp, moderation.bp, api.bp, hsds.bp):
        app.register_blueprint(blueprint)

    if not app.debug and not app.testing:
        logging.basicConfig(stream=sys.stderr, level=app.config["LOG_LEVEL"])
    return app
