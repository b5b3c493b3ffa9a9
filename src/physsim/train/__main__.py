"""`python -m physsim.train --config experiments/tiny.py [--stop-at STEP] [--section.key=value ...]`."""

from __future__ import annotations

import argparse
import sys

from physsim.model.checkpoint import CheckpointError
from physsim.train import config as config_lib
from physsim.train.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m physsim.train", description=__doc__,
        epilog="Any config value can be overridden: --train.steps=200 --data.families=\"{'collision': 1}\" "
               "--model.dec_depth=4. Run directory: <run.out_dir>/<run.name>; an existing run resumes.")
    parser.add_argument("--config", default="experiments/tiny.py", help="a Python file with get_config()")
    parser.add_argument("--no-resume", action="store_true", help="refuse to continue an existing run")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--stop-at", type=int, metavar="STEP",
                        help="stop after this step with a checkpoint (and its evaluation, if one is due), as an "
                             "interruption would; the same command with a later --stop-at (or none) continues the "
                             "run: for jobs with a time limit (the learning-rate schedule stays the whole run's; "
                             "the last step, train.steps, finishes the run as usual)")
    args, rest = parser.parse_known_args(argv)
    try:
        config = config_lib.replace(config_lib.load(args.config), config_lib.parse_overrides(rest))
    except ConfigError as e:
        parser.error(str(e))
    if args.print_config:
        print(config_lib.to_json(config))
        return 0
    from physsim.train import mesh, run

    mesh.initialize_distributed()
    try:
        result = run.train(config, resume=not args.no_resume, stop_at=args.stop_at)
    except (ConfigError, CheckpointError) as e:
        print(f"python -m physsim.train: error: {e}", file=sys.stderr)
        return 2
    except run.TrainingFault as e:
        print(f"python -m physsim.train: training fault: {e}", file=sys.stderr)
        return 3
    return 130 if result.stopped_by_signal else 0  # stopped at --stop-at: 0, as asked


if __name__ == "__main__":
    sys.exit(main())
