"""Entry point for gunicorn (`gunicorn wsgi:app`) and the flask CLI (`flask --app wsgi ...`)."""

import sys
import threading

from directory import create_app
from directory.geocoding import get_offline

app = create_app()

# Under gunicorn, open the offline gazetteer (or build it, once, if `init-db` didn't) in the
# background as each worker starts, so the first search a patient makes isn't the slow one.
if "gunicorn" in sys.argv[0]:
    threading.Thread(target=get_offline().preload, name="gazetteer", daemon=True).start()
