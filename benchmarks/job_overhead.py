"""Snakemake's local execution overhead per job: N small jobs (each a `script:` that
reads a manifest-sized parquet file and writes a JSON record, like our light rules)
against the same work done N times in one Python process.

Usage: python benchmarks/job_overhead.py [--jobs 40]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORK = '''
import json, sys
import pyarrow.parquet as pq

def work(source, target):
    table = pq.read_table(source)
    with open(target, "w") as fh:
        json.dump({"rows": table.num_rows, "columns": table.num_columns}, fh)
'''

SNAKEFILE = '''
N = {n}

rule all:
    input:
        expand("out/{{i}}.json", i=range(N)),

rule one:
    input:
        "table.parquet",
    output:
        "out/{{i}}.json",
    script:
        "job.py"
'''


def run(jobs: int = 40) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pq.write_table(pa.table({"frame_index": list(range(300)), "path": [f"f/{i:08d}.jpg" for i in range(300)]}),
                       root / "table.parquet")
        (root / "work.py").write_text(WORK)
        (root / "job.py").write_text("import sys\nsys.path.insert(0, '.')\nfrom work import work\n"
                                     "work(snakemake.input[0], snakemake.output[0])\n")
        (root / "Snakefile").write_text(SNAKEFILE.format(n=jobs))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--quiet", "all"], cwd=root, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        snakemake_s = time.perf_counter() - started
        one = root / "one"
        one.mkdir()
        code = f"{WORK}\nfor i in range({jobs}):\n    work('table.parquet', 'one/' + str(i) + '.json')\n"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
        single_s = time.perf_counter() - started
    per_job = (snakemake_s - single_s) / jobs
    return {"measure": "local execution overhead per job (--cores 1)", "value": per_job,
            "baseline": "same work in one process", "baseline_value": single_s / jobs, "ratio": snakemake_s / single_s,
            "goal": "<= 0.5 s per job", "met": per_job <= 0.5,
            "detail": f"{jobs} jobs: Snakemake {snakemake_s:.1f} s, one process {single_s:.2f} s"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=40)
    print(run(parser.parse_args().jobs))
