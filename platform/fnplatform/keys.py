"""API keys as stored and checked: shared by the registry (which stores hashes and grants) and the HTTP
edge (which checks them). A key has a role (each includes the ones before it) and an optional scope."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fn import Forbidden


def hash_key(plaintext: str) -> str:
    # Keys are 32 random bytes, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(plaintext.encode()).hexdigest()


# Each role includes the ones before it.
ROLES = ("invoke", "deploy", "admin")
ROLE_HELP = {
    "invoke": "call functions and flows (only those the key is scoped to, if any)",
    "deploy": "also upload bundles, deploy, remove functions, manage secrets and read logs",
    "admin": "also create, list and revoke API keys",
}


@dataclass(frozen=True)
class Grant:
    """What one API key may do, as the control plane publishes it (never the key itself)."""

    key_id: str
    role: str
    functions: frozenset[str] | None = None  # None: every function
    flows: frozenset[str] | None = None  # None: every flow
    rate_limit: float | None = None  # requests per second, None: unlimited

    def has_role(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def require(self, role: str) -> None:
        if not self.has_role(role):
            raise Forbidden(f"this API key has the role {self.role!r}; this needs {role!r} ({ROLE_HELP[role]}); "
                            f"ask an admin for a key with 'fnctl keys create NAME --role {role}'", status=403)

    def may_call(self, function: str) -> bool:
        return self.functions is None or function in self.functions

    def may_run(self, flow: str) -> bool:
        return self.flows is None or flow in self.flows

    def require_function(self, function: str) -> None:
        if not self.may_call(function):
            raise Forbidden(f"this API key may call only {', '.join(sorted(self.functions or ()))}, "
                            f"not {function!r}", status=403)

    def require_flow(self, flow: str) -> None:
        if not self.may_run(flow):
            raise Forbidden(f"this API key may run only the flows {', '.join(sorted(self.flows or ())) or '(none)'}, "
                            f"not {flow!r}", status=403)

    def to_json(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "role": self.role,
                "functions": sorted(self.functions) if self.functions is not None else None,
                "flows": sorted(self.flows) if self.flows is not None else None, "rate_limit": self.rate_limit}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Grant:
        functions, flows = data.get("functions"), data.get("flows")
        return cls(key_id=data["key_id"], role=data["role"],
                   functions=frozenset(functions) if functions is not None else None,
                   flows=frozenset(flows) if flows is not None else None, rate_limit=data.get("rate_limit"))
