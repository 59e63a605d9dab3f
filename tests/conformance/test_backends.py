"""The store conformance suite of :mod:`agenthost.testing`, run on every backend agenthost ships
(the ``store_factory`` fixture of this directory's conftest)."""

from agenthost.testing import *  # noqa: F403
