"""Errors of the catalog package.

CatalogError            a profile or GPU cannot be found or read (bad name, bad YAML)
└── DoesNotFit          the planner found no configuration for the requested hardware
"""

from __future__ import annotations


class CatalogError(Exception):
    """A profile or GPU could not be found or loaded; the message names it and the fix."""


class DoesNotFit(CatalogError):
    """The model does not fit the requested hardware (raised only when a caller asks for it)."""
