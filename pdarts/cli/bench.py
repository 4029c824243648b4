"""``pdarts bench``: seconds per step and peak memory of search and training steps, per optimisation.

    pdarts bench [--configs stage1-b32 stage1-b96 ...] [--modes fp32 bf16 channels_last ...] \\
        [--steps 5] [--warmup 2] [--threads 2] [--device cpu] [--out bench.json]

Prints a markdown table and writes the results, with the machine and library versions, as JSON.
A benchmark, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import logging

from ..io import write_json
from ._settings import int_at_least

log = logging.getLogger("pdarts.bench")


def add_parser(commands) -> None:
    from ..bench import CONFIGS, DEFAULT_MODES, LEVERS

    parser = commands.add_parser(
        "bench",
        help="time search and training steps in each optimisation mode",
        description="Seconds per step and peak memory of search and training steps, in each optimisation "
        "mode; each (configuration, mode) in a fresh process. A benchmark: run it on a quiet machine.",
    )
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[name for name in CONFIGS if not name.startswith("smoke")],
        metavar="NAME",
        help=f"configurations to run, from: {', '.join(CONFIGS)} (default: all but the smoke ones)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=list(DEFAULT_MODES),
        metavar="MODE",
        help=f"fp32 (eager baseline), all, or levers joined by '+' from: {', '.join(LEVERS)} "
        f"(default: {' '.join(DEFAULT_MODES)}; compile takes minutes per configuration on a CPU)",
    )
    parser.add_argument("--steps", type=int_at_least(1), default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int_at_least(0), default=2, help="untimed steps first (compilation)")
    parser.add_argument("--threads", type=int_at_least(1), help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    parser.add_argument("--out", help="write the results to this JSON file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import check_options, run_bench, table
    from ._common import resolve_device

    device = str(resolve_device(args.device))
    check_options(args.configs, args.modes, device)

    def report(result: dict) -> None:
        if "error" in result:
            log.warning("%s / %s failed: %s", result["config"], result["mode"], result["error"])
        else:
            log.info(
                "%s / %s: %.3f s per step, %.2f GB peak",
                result["config"],
                result["mode"],
                result["seconds_per_step"],
                result["peak_memory_mb"] / 1024,
            )

    results = run_bench(
        args.configs, args.modes, args.steps, args.warmup, device, args.threads, on_result=report
    )
    print(table(results))
    if args.out:
        write_json(args.out, results)
    return 1 if any("error" in result for result in results["results"]) else 0
