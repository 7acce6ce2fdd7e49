"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from ipychat import LocalServer

# Property tests check what is generated, not how fast: a per-example deadline only measures how
# busy the machine is (CI shares two cores with kernels and a browser), so it is off everywhere.
settings.register_profile("ipychat", deadline=None)
settings.load_profile("ipychat")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    """The bundled server on a free loopback port, one per test module."""
    with LocalServer() as srv:
        yield srv
