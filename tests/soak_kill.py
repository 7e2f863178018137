"""Soak test: interrupt a workflow run many times at random stages, resume, and check
the results equal an uninterrupted run's.

    python tests/soak_kill.py --config config/demo.yaml --iterations 30 --seed 1

Runs in temporary folders (kept with --keep); exits non-zero on the first difference.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from resume_harness import REPO, comparable_results, complete_run, interrupted_run, random_plan, write_config  # noqa: E402

STAGES = ["download", "extract", "filter", "embed", "dedup", "summary"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "config" / "demo.yaml"))
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    root = Path(tempfile.mkdtemp(prefix="video-miner-soak-"))
    reference_dir, soak_dir = root / "reference", root / "soak"
    # Relative paths in the config (the demo's resources/) resolve inside each run folder.
    complete_run(reference_dir, write_config(reference_dir, config))
    reference = comparable_results(reference_dir)
    config_path = write_config(soak_dir, config)
    for step in random_plan(args.seed, args.iterations, STAGES):
        outcome = interrupted_run(soak_dir, config_path, step)
        print(f"{step.stage:18s} +{step.delay_s:.2f}s {step.signal.name:8s} {outcome}", flush=True)
        if outcome.startswith("finished"):  # nothing left to interrupt: start over from scratch
            if comparable_results(soak_dir) != reference:
                print("DIFFERENT results after a run that finished")
                return 1
            for sub in ("results", "logs", ".snakemake"):
                shutil.rmtree(soak_dir / sub, ignore_errors=True)
    complete_run(soak_dir, config_path)
    resumed = comparable_results(soak_dir)
    different = [name for name in reference.keys() | resumed.keys() if reference.get(name) != resumed.get(name)]
    print(f"{len(reference)} result files compared; {len(different)} differ" + (f": {different[:10]}" if different else ""))
    if args.keep:
        print(f"run folders: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
