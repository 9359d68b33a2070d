"""Compatibility names: the store moved to the `stores` package (one protocol, two backends).
Kept only so that code written against `zero_latency.store` on other branches still imports;
new code imports from `zero_latency.stores`."""

from .stores import *  # noqa: F403
from .stores import __all__  # noqa: F401
