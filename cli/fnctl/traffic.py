"""``fnctl versions``, ``fnctl rollback``, ``fnctl traffic`` and ``fnctl shadow report``: versions and where calls go."""

from __future__ import annotations

from typing import Any

import click

from ._api import Api
from ._output import console, json_option, print_json, print_table


def parse_weights(text: str, option: str) -> dict[str, float]:
    """``3=90,4=10`` -> {"3": 90.0, "4": 10.0}; a clear error naming *option* otherwise."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        version, sep, weight = part.partition("=")
        try:
            number, share = int(version), float(weight.rstrip("%"))
        except ValueError:
            number, share = 0, -1.0
        if not sep or number < 1 or not 0 <= share <= 100:
            raise click.BadParameter(f"{part!r} is not VERSION=PERCENT (a version number and 0-100), e.g. 3=90,4=10",
                                     param_hint=option)
        weights[str(number)] = share
    if not weights:
        raise click.BadParameter("give VERSION=PERCENT pairs, e.g. 3=90,4=10", param_hint=option)
    return weights


@click.command()
@click.argument("name")
@json_option
def versions(name: str, as_json: bool) -> None:
    """List NAME's versions: when, bundle, what changed, state (active / canary / shadow / pinned / retired) and who."""
    found: dict[str, Any] = Api().get(f"/v1/functions/{name}/versions")
    if as_json:
        print_json(found)
        return
    print_table(["VERSION", "STATE", "CREATED", "BUNDLE", "BY", "CHANGES"],
                [[str(v["version"]), v["state"], v["created_at"][:19].replace("T", " "), v["bundle_sha256"][:12],
                  v["created_by"] or "-", "; ".join(v["changes"])[:80]] for v in found["versions"]])
    console.print(f"the newest {found['keep']} versions stay callable (FN_KEEP_VERSIONS), and any that runs")


@click.command()
@click.argument("name")
@click.option("--to", "to", type=click.IntRange(min=1), default=None,
              help="The version to make active; default: the one active before (with a canary in flight: drop it).")
@json_option
def rollback(name: str, to: int | None, as_json: bool) -> None:
    """Make an earlier version of NAME active again, at once: no rebuild, no upload."""
    done: dict[str, Any] = Api(timeout=330).post(f"/v1/functions/{name}/rollback", {"to": to})
    if as_json:
        print_json(done)
        return
    if done["active"] == done["previous"]:
        console.print(f"{name}: canary dropped; v{done['active']} serves every call")
    else:
        console.print(f"{name}: v{done['active']} active again (was v{done['previous']}) in {done['seconds']:.1f} s")


@click.command()
@click.argument("name")
@click.option("--split", default=None, help="Percent of calls per version, e.g. 3=90,4=10 (100 on one: make it active).")
@click.option("--shadow", default=None, help="Copy a share of live calls to a version, e.g. 4=20 (callers see only "
                                             "the active version's answers).")
@click.option("--no-shadow", is_flag=True, help="Stop copying calls to the shadow version.")
@json_option
def traffic(name: str, split: str | None, shadow: str | None, no_shadow: bool, as_json: bool) -> None:
    """Show where NAME's calls go (weights, shadow, rollout, history), or change it."""
    if sum((split is not None, shadow is not None, no_shadow)) > 1:
        raise click.UsageError("give one of --split, --shadow or --no-shadow")
    api = Api(timeout=330)  # a split or shadow waits until its versions run
    if split is not None:
        body: dict[str, Any] = {"split": parse_weights(split, "--split")}
    elif shadow is not None:
        pairs = parse_weights(shadow, "--shadow")
        if len(pairs) != 1:
            raise click.BadParameter("one VERSION=PERCENT, e.g. 4=20", param_hint="--shadow")
        ((version, percent),) = pairs.items()
        body = {"shadow_version": int(version), "shadow_percent": percent}
    elif no_shadow:
        body = {"stop_shadow": True}
    else:
        body = {}
    state: dict[str, Any] = api.request("PUT", f"/v1/functions/{name}/traffic", json=body).json() if body \
        else api.get(f"/v1/functions/{name}/traffic")
    if as_json:
        print_json(state)
        return
    weights = ", ".join(f"v{v} {w:g}%" for v, w in state["weights"].items())
    console.print(f"{name}: active v{state['active']}; calls: {weights}")
    if state["shadow"]:
        console.print(f"shadow: v{state['shadow']['version']} gets a copy of {state['shadow']['percent']:g}% of calls "
                      f"('fnctl shadow report {name}')")
    rollout = state["rollout"]
    if rollout:
        console.print(f"rollout: v{rollout['canary']} step {rollout['step'] + 1} of {len(rollout['steps'])} "
                      f"({', '.join(f'{s:g}%' for s in rollout['steps'])}), every {rollout['interval_s']:g} s; gates: "
                      f"error rate +{rollout['gates']['max_error_rate'] * 100:g}%, p99 x{rollout['gates']['max_p99_ratio']:g}")
    if state["pinned"]:
        console.print(f"running for pinned calls: {', '.join(f'v{v}' for v in state['pinned'])}")
    if state["history"]:
        print_table(["AT", "ACTION", "VERSION", "WEIGHTS", "BY", "WHY"],
                    [[e["at"][:19].replace("T", " "), e["action"], str(e["version"] or "-"),
                      ", ".join(f"v{v} {w:g}%" for v, w in (e["weights"] or {}).items()) or "-", e["by"] or "-",
                      e["reason"]] for e in state["history"]])


@click.group()
def shadow() -> None:
    """Shadow traffic: how a candidate version answers live calls, compared with the active one."""


@shadow.command()
@click.argument("name")
@click.option("--last", default=1000, show_default=True, type=click.IntRange(1, 5000), help="Compared calls read.")
@click.option("--examples", default=5, show_default=True, type=click.IntRange(0, 50), help="Disagreements shown.")
@json_option
def report(name: str, last: int, examples: int, as_json: bool) -> None:
    """Compare NAME's shadow answers with the active version's: agreement, numeric differences, errors, latency."""
    from fnplatform.control.shadow_report import render

    found: dict[str, Any] = Api().get(f"/v1/functions/{name}/shadow", limit=last, examples=examples)
    if as_json:
        print_json(found)
        return
    click.echo(render(found))


COMMANDS = (versions, rollback, traffic)
