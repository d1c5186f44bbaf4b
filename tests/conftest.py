"""Shared test settings: Ray must never attach to another cluster or write outside our temp dirs."""

import os
import secrets

# Before anything imports Ray: no usage stats, and token auth with a token of this test session's
# own (Ray would otherwise write ~/.ray/auth_token).
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_AUTH_MODE"] = "token"
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
