"""``fnctl secrets``: named sets of environment variables, encrypted by the platform, for ``secrets=[...]``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from fn._platform import ENV_NAME_PATTERN

from ._api import Api
from ._output import json_option, print_json, print_table


@click.group()
def secrets() -> None:
    """Set, list and remove secrets (values are never shown)."""


def _key(text: str, where: str) -> str:
    if not re.fullmatch(ENV_NAME_PATTERN, text):
        raise click.BadParameter(f"{text[:80]!r} is not an environment variable name (letters, digits and '_', not "
                                 f"starting with a digit)", param_hint=where)
    return text


def parse_env_file(text: str, where: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` allowed, ``#`` comments, values optionally in matching quotes)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            raise click.BadParameter(f"line {number} is not KEY=VALUE", param_hint=where)
        key, value = _key(key.strip(), f"{where} line {number}"), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key in values:
            raise click.BadParameter(f"line {number} sets {key} again", param_hint=where)
        values[key] = value
    return values


def collect(pairs: tuple[str, ...], env_file: str | None) -> dict[str, str]:
    """Everything the command line gives; a value of '-' (or FILE '-') is read from standard input."""
    values: dict[str, str] = {}
    stdin_used = False
    if env_file is not None:
        if env_file == "-":
            stdin_used = True
            text = sys.stdin.read()
        else:
            try:
                text = Path(env_file).read_text()
            except OSError as exc:
                raise click.BadParameter(f"cannot read {env_file}: {exc.strerror}", param_hint="--from-env-file") from None
        values.update(parse_env_file(text, "--from-env-file"))
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{key[:80]!r} is not KEY=VALUE or KEY=- (read the value from standard input)",
                                     param_hint="KEY=VALUE")
        _key(key, "KEY=VALUE")
        if key in values:
            raise click.BadParameter(f"{key} is given twice", param_hint="KEY=VALUE")
        if value == "-":
            if stdin_used:
                raise click.BadParameter(f"{key}=-: standard input is already read for another value; give one "
                                         f"value on it, or use --from-env-file", param_hint="KEY=VALUE")
            stdin_used = True
            if sys.stdin.isatty():  # typed: not echoed
                value = click.prompt(f"value of {key}", hide_input=True, prompt_suffix=": ")
            else:
                value = sys.stdin.read().removesuffix("\n")
        values[key] = value
    if not values:
        raise click.UsageError("give at least one KEY=-, KEY=VALUE or --from-env-file FILE")
    return values


@secrets.command("set")
@click.argument("name")
@click.argument("pairs", nargs=-1, metavar="KEY=VALUE|KEY=-...")
@click.option("--from-env-file", "env_file", metavar="FILE",
              help="Read KEY=VALUE lines from FILE ('-': standard input). Keeps values out of the shell history.")
@json_option
def set_secret(name: str, pairs: tuple[str, ...], env_file: str | None, as_json: bool) -> None:
    """Create or replace secret NAME with these keys (keys not given are dropped).

    Values on the command line end up in the shell history and the process list: prefer KEY=-
    (the value is read from standard input, one trailing newline removed, or asked for without
    echo on a terminal) or --from-env-file FILE.
    The functions whose secrets=[...] name it restart with the new values. Limits: 100 keys,
    64 KiB per value, 256 KiB in all.

    Example: printf %s "$TOKEN" | fnctl secrets set openai OPENAI_API_KEY=-
    """
    values = collect(pairs, env_file)
    record = Api().request("PUT", f"/v1/secrets/{name}", json={"values": values}).json()
    if as_json:
        print_json(record)
        return
    if not record["changed"]:
        click.echo(f"secret {name} unchanged (revision {record['revision']}): keys {', '.join(record['keys'])}")
        return
    click.echo(f"secret {name} set (revision {record['revision']}): keys {', '.join(record['keys'])}")
    if record["restarting"]:
        click.echo(f"restarting with the new values: {', '.join(record['restarting'])}")


@secrets.command("ls")
@json_option
def list_secrets(as_json: bool) -> None:
    """List secrets: their keys, revision, last change and the functions that use them (never values)."""
    records = Api().get("/v1/secrets")
    if as_json:
        print_json(records)
        return
    print_table(["NAME", "KEYS", "REVISION", "UPDATED", "USED BY"],
                [[r["name"], ", ".join(r["keys"]), r["revision"], r["updated_at"], ", ".join(r["used_by"])]
                 for r in records], empty="no secrets; create one with 'fnctl secrets set NAME KEY=-'")


@secrets.command("rm")
@click.argument("name")
@click.option("--force", is_flag=True,
              help="Remove it even if deployed functions use it (their new replicas then fail to start).")
def remove(name: str, force: bool) -> None:
    """Delete secret NAME; refused while a deployed function uses it, unless --force."""
    result = Api().request("DELETE", f"/v1/secrets/{name}", params={"force": "true"} if force else None).json()
    users = result.get("used_by") or []
    click.echo(f"removed secret {name}" + (f" (still named by {', '.join(users)})" if users else ""))
