"""Fixtures shared by the adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The shared HTTP client an adapter is given (the engine owns one the same way)."""
    async with httpx.AsyncClient() as http:
        yield http
