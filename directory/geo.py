"""Kept so that ``from directory.geo import geocoder`` goes on working; the code lives in
``directory.geocoding.app``. Import from there in new code."""

from .geocoding.app import DatabaseCache, geocoder

__all__ = ["DatabaseCache", "geocoder"]
