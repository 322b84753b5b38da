"""``tito run``: the launcher of data-parallel jobs, as a tito command (loaded only by tito)."""

from __future__ import annotations

import sys

import click

from .launch import LaunchError, launch


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    help="Run SCRIPT on N ranks through MPI (like torchrun): one BLAS thread per rank, rank 0's "
         "output only. Several machines: --hosts h1,h2 or --hostfile F (mpiexec starts the ranks over "
         "ssh; every host needs this Python environment at the same path).",
)
@click.option("-n", "--nproc", type=click.IntRange(min=1), default=2, show_default=True, help="Number of ranks.")
@click.option("--hosts", default=None, help="Comma-separated machines to run the ranks on.")
@click.option("--hostfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file of host names, one a line (host or host:slots).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="BLAS threads per rank.")
@click.option("--all-output", is_flag=True, help="Show the output of every rank, not only rank 0's.")
@click.option("-m", "module", is_flag=True, help="SCRIPT is a module name (python -m SCRIPT).")
@click.argument("script")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(nproc, hosts, hostfile, threads, all_output, module, script, args):
    """Start the ranks and exit with the job's exit code.

    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(run, ["--help"]).output.startswith("Usage: run")
    True
    """
    if hosts and hostfile:
        raise click.UsageError("give --hosts or --hostfile, not both")
    try:
        code = launch(script, list(args), nproc=nproc, hosts=hosts.split(",") if hosts else None,
                      hostfile=hostfile, threads=threads, all_output=all_output, module=module)
    except (LaunchError, ImportError) as e:
        click.secho(f"Error: {e}", fg="red", err=True)
        sys.exit(1)
    sys.exit(code)
