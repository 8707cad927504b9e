"""The parser and the exit codes of ``sparsity-search``.

A thin layer over the API: ``run_commands`` (run, worker), ``decide_commands`` (pareto,
status, pick, reevaluate, export, report, sensitivity) and ``inspect_command`` (inspect) register their commands; ``args`` holds the arguments
they share. Importing this module loads no torch: each command imports what it needs."""
from __future__ import annotations

import argparse
import os
import sys

from search.cli.decide_commands import add_decide_commands
from search.cli.inspect_command import add_inspect_command
from search.cli.run_commands import add_run_commands
from search.schema import ConfigError

EXIT_BAD_INPUT = 2
EXIT_STUDY_STOPPED = 3


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparsity-search",
        description="Search per-layer sparsity, pruning criteria and quantization bits; read, "
                    "pick, export and report the Pareto front of accuracy against cost.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_run_commands(sub)
    add_decide_commands(sub)
    add_inspect_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from trainers.errors import SetupError  # e.g. trainers.checkpoint.CheckpointError

    from search.run.progress import StudyStopped

    from search.run import stop_request

    parser = build_parser()
    args = parser.parse_args(argv)
    restore = stop_request.install()   # Ctrl-C and a scheduler's SIGTERM, never lost
    try:
        return args.func(args)
    except (ConfigError, SetupError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StudyStopped as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_STUDY_STOPPED
    except KeyboardInterrupt:
        stop_request.release_heartbeats()
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:       # the reader closed the pipe (e.g. `| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
