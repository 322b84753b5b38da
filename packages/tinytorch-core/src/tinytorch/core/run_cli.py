"""``tito run``: the launcher of data-parallel jobs, as a tito command (loaded only by tito)."""

from __future__ import annotations

import sys

import click

from .cli_params import FiniteFloat
from .launch import KILL_GRACE, LaunchError, launch


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    help="Run SCRIPT on N ranks through MPI (like torchrun): one BLAS thread per rank, rank 0's "
         "output only. Several machines: --hosts h1,h2 or --hostfile F (mpiexec starts the ranks over "
         "ssh; every host needs this Python environment at the same path). A rank that fails or ends "
         "while others wait for it ends the job with one line naming it; SIGINT/SIGTERM/SIGHUP are "
         f"passed on to the ranks, which get {KILL_GRACE:g} s to stop before they are killed (exit "
         "code 128 + the signal).",
)
@click.option("-n", "--nproc", type=click.IntRange(min=1), default=2, show_default=True, help="Number of ranks.")
@click.option("--hosts", default=None, help="Comma-separated machines to run the ranks on.")
@click.option("--hostfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file of host names, one a line (host or host:slots).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="BLAS threads per rank.")
@click.option("--all-output", is_flag=True, help="Show the output of every rank, not only rank 0's.")
@click.option("--timeout", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Seconds after which the whole job is ended (exit code 124) [default: none].")
@click.option("--stall-timeout", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Seconds a rank may wait in one collective (all-reduce, broadcast, barrier) while no rank "
                   "makes progress; then the job is ended naming the rank that did not come (exit code 124) "
                   "[default: none; --nproc training uses 600].")
@click.option("--oversubscribe", is_flag=True, help="Allow more ranks than this machine has cores.")
@click.option("-m", "module", is_flag=True, help="SCRIPT is a module name (python -m SCRIPT).")
@click.argument("script")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(nproc, hosts, hostfile, threads, all_output, timeout, stall_timeout, oversubscribe, module, script, args):
    """Start the ranks and exit with the job's exit code.

    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(run, ["--help"]).output.startswith("Usage: run")
    True
    """
    if hosts and hostfile:
        raise click.UsageError("give --hosts or --hostfile, not both")
    try:
        code = launch(script, list(args), nproc=nproc, hosts=hosts.split(",") if hosts else None,
                      hostfile=hostfile, threads=threads, all_output=all_output, module=module, timeout=timeout,
                      stall_timeout=stall_timeout, oversubscribe=oversubscribe)
    except (LaunchError, ImportError) as e:
        click.secho(f"Error: {e}", fg="red", err=True)
        sys.exit(1)
    sys.exit(code)
