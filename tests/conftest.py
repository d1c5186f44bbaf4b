"""Shared test settings: Ray must never attach to another cluster or write outside our temp dirs."""

import os
import secrets

# Before anything imports Ray: no usage stats, and token auth with a token of this test session's
# own (Ray would otherwise write ~/.ray/auth_token).
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_AUTH_MODE"] = "token"
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))


# Figures some slow tests measure (a recovery time, idle CPU), printed at the end of the run: CI's log shows them
# without -s. Figures are reported, never asserted (timing belongs to bench/).
import pytest  # after the environment above, which must be set before anything imports Ray

FIGURES: list[str] = []


@pytest.fixture
def report_figure() -> object:
    return FIGURES.append


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("figures measured by the tests")
        for line in FIGURES:
            terminalreporter.write_line(line)
