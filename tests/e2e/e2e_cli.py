"""fnctl as a user runs it: a subprocess with the user's environment, and free ports for its servers.

A module of its own (not conftest) so the tests import it by a name no other test folder uses.
"""

from __future__ import annotations

import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fnctl(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fnctl.main", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
