"""Fixtures of the plugin tests: each plugin is built once per session (knowledge base, model)."""
from __future__ import annotations

import pytest

from plugins.ed_flow.plugin import EdFlowPlugin
from plugins.or_planning.plugin import OrPlanningPlugin
from plugins.pharmacy.plugin import PharmacyPlugin
from plugins.sepsis.plugin import SepsisPlugin


@pytest.fixture(scope="session")
def sepsis() -> SepsisPlugin:
    return SepsisPlugin()


@pytest.fixture(scope="session")
def pharmacy() -> PharmacyPlugin:
    return PharmacyPlugin()


@pytest.fixture(scope="session")
def ed_flow() -> EdFlowPlugin:
    return EdFlowPlugin()


@pytest.fixture(scope="session")
def or_planning() -> OrPlanningPlugin:
    return OrPlanningPlugin()
