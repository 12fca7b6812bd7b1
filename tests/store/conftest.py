"""Store-test fixtures: the fake hub (HF, ModelScope, mirror, CDN) and settings pointing at it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fakehub / ggufmaker beside the tests

from fakehub import FakeHub  # noqa: E402

from bendi.core.settings import Settings, load_settings  # noqa: E402


@pytest.fixture()
def hub() -> Iterator[FakeHub]:
    with FakeHub() as running:
        yield running


@pytest.fixture()
def hub_settings(bendi_home: Path, hub: FakeHub) -> Settings:
    return load_settings(
        home=bendi_home,
        threads=2,
        hf_endpoint=hub.endpoint,
        modelscope_endpoint=hub.endpoint,
        mirrors=(hub.mirror,),
        allowed_hosts=(hub.cdn_host,),
    )
