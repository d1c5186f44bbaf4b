"""``fnctl keys``: API keys for the control plane and the function endpoints."""

from __future__ import annotations

import click

from ._api import Api
from ._output import json_option, print_json, print_table


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.argument("name")
@json_option
def create(name: str, as_json: bool) -> None:
    """Create a key called NAME and print it (only the key, so KEY=$(fnctl keys create ci) works)."""
    record = Api().post("/v1/keys", {"name": name})
    if as_json:
        print_json(record)
    else:
        click.echo(record["key"])


@keys.command("ls")
@json_option
def list_keys(as_json: bool) -> None:
    """List keys (never their secret part)."""
    records = Api().get("/v1/keys")
    if as_json:
        print_json(records)
        return
    print_table(["ID", "NAME", "CREATED", "REVOKED"],
                [[k["id"], k["name"], k["created_at"], "yes" if k["revoked"] else ""] for k in records])


@keys.command("revoke")
@click.argument("key_id")
def revoke(key_id: str) -> None:
    """Revoke the key with id KEY_ID; requests with it fail with 401 within seconds."""
    Api().delete(f"/v1/keys/{key_id}")
    click.echo(f"revoked {key_id}")
