"""Shared pytest fixtures; the helpers they use live in fixtures.py."""
import pytest

from fixtures import TINY


@pytest.fixture(params=sorted(TINY))
def family(request):
    return request.param
