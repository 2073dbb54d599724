"""The ``mpp`` command: a thin shell over the Python API that notebooks use too.

Each subcommand parses options, calls one API function, and prints. Errors derived from
:class:`mpp.errors.MppError` are printed as one line (``mpp: error: ...``) with exit code 2;
no library traceback reaches the user.
"""

from __future__ import annotations

import sys

import click

from mpp.errors import MppError


class _Group(click.Group):
    """A click group that turns MppError into one clear line and exit code 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MppError as exc:
            click.echo(f"mpp: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="mpp")
def main() -> None:
    """mpp: run analytical SQL the way an MPP warehouse does, on a Dask cluster."""


@main.group()
def bench() -> None:
    """Benchmarks: wall time and peak memory, mpp side by side with its peers."""


if __name__ == "__main__":
    main()
