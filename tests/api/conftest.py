from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.http import create_app
from tests.server import running
from tests.world import World


@pytest.fixture
def base_url(world: World) -> Iterator[str]:
    with running(create_app(world.services)) as url:
        yield url
