"""``fnctl keys``: API keys for the control plane and the function endpoints."""

from __future__ import annotations

from typing import Any

import click

from ._api import Api
from ._output import json_option, print_json, print_table


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


def _names(value: str | None) -> list[str] | None:
    return [name.strip() for name in value.split(",") if name.strip()] if value is not None else None


@keys.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["invoke", "deploy", "admin"]), default="invoke", show_default=True,
              help="invoke: call functions and flows; deploy: also deploy, remove, read logs and manage secrets; "
                   "admin: also manage keys.")
@click.option("--functions", metavar="A,B", default=None,
              help="Only these functions may be called with the key (default: all).")
@click.option("--flows", metavar="F,G", default=None, help="Only these flows may be run with the key (default: all).")
@click.option("--rate-limit", type=click.FloatRange(min=0, min_open=True), default=None, metavar="N",
              help="At most N requests per second (default: no limit).")
@json_option
def create(name: str, role: str, functions: str | None, flows: str | None, rate_limit: float | None,
           as_json: bool) -> None:
    """Create a key called NAME and print it (only the key, so KEY=$(fnctl keys create ci) works).

    Least privilege by default: a new key may only call functions and flows."""
    body: dict[str, Any] = {"name": name, "role": role}
    for field, value in (("functions", _names(functions)), ("flows", _names(flows)), ("rate_limit", rate_limit)):
        if value is not None:
            body[field] = value
    record = Api().post("/v1/keys", body)
    if as_json:
        print_json(record)
    else:
        click.echo(record["key"])


@keys.command("ls")
@json_option
def list_keys(as_json: bool) -> None:
    """List keys: role, scope, rate limit, created, last used (never their secret part)."""
    records = Api().get("/v1/keys")
    if as_json:
        print_json(records)
        return

    def scope(k: dict[str, Any]) -> str:
        parts = [f"{field}={','.join(k[field])}" for field in ("functions", "flows") if k.get(field) is not None]
        return " ".join(parts) or "all"

    print_table(["ID", "NAME", "ROLE", "SCOPE", "RATE", "CREATED", "LAST USED", "REVOKED"],
                [[k["id"], k["name"], k["role"], scope(k), f"{k['rate_limit']:g}/s" if k.get("rate_limit") else "",
                  k["created_at"], k.get("last_used_at") or "", "yes" if k["revoked"] else ""] for k in records])


@keys.command("revoke")
@click.argument("key_id")
def revoke(key_id: str) -> None:
    """Revoke the key with id KEY_ID; requests with it fail with 401 within seconds."""
    Api().delete(f"/v1/keys/{key_id}")
    click.echo(f"revoked {key_id}")


@keys.command("webhook-secret")
@click.argument("key_id", required=False)
@json_option
def webhook_secret(key_id: str | None, as_json: bool) -> None:
    """Print the secret that signs the webhooks of jobs spawned with this key (or, for admins, key KEY_ID).

    Only the secret goes to stdout, so SECRET=$(fnctl keys webhook-secret) works; the receiver checks each
    webhook's Fn-Signature header with it (fn.verify_webhook). It stays the same across restarts.

    \b
        fnctl keys webhook-secret 3f2a9c0d > webhook-secret.txt
    """
    found: dict[str, str] = Api().get("/v1/webhook-secret", **({"key": key_id} if key_id else {}))
    if as_json:
        print_json(found)
        return
    click.echo(found["secret"])
    click.echo(f"the webhook secret of key {found['key']}: verify each delivery with "
               f"fn.verify_webhook(body, request.headers.get('{found.get('header') or 'Fn-Signature'}'), secret)",
               err=True)
