"""The ``fnctl`` entry point: one click group, one module per noun."""

from __future__ import annotations

from typing import Any

import click

from fn import FnError

from . import deploy, flows, functions, keys, local, vectorize


class _Group(click.Group):
    """Turns the platform's errors into one clear line and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FnError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fn-platform", prog_name="fnctl")
def cli() -> None:
    """Deploy Python functions and models as autoscaling, scale-to-zero endpoints on Ray Serve.

    The platform is found through FN_API_URL and FN_API_KEY, or the credentials file that
    'fnctl up' writes under FN_HOME (default ~/.fn).
    """


for command in (*local.COMMANDS, deploy.deploy, *functions.COMMANDS):
    cli.add_command(command)
cli.add_command(keys.keys)
cli.add_command(flows.flow)
cli.add_command(vectorize.vectorize)


if __name__ == "__main__":
    cli()
