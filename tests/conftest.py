"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ipychat import LocalServer


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    """The bundled server on a free loopback port, one per test module."""
    with LocalServer() as srv:
        yield srv
