"""Snakemake's local execution overhead per job, as the marginal cost of a job (runs of
N/2 and N jobs, so Snakemake's start-up, paid once per run, is not spread over the jobs)
against the same work done in one Python process.

Two kinds of job, each a `script:`: an empty-ish one that writes a small JSON record (the
goal's measure: what Snakemake itself costs per job) and one that also reads a
manifest-sized parquet file, like our light rules (what a job's own imports add: pyarrow's
``read_table`` imports pandas in every job process).

Usage: python benchmarks/job_overhead.py [--jobs 40]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORK = {
    "empty": '''
import json

def work(source, target):
    with open(target, "w") as fh:
        json.dump({"source": source}, fh)
''',
    "parquet": '''
import json
import pyarrow.parquet as pq

def work(source, target):
    table = pq.read_table(source)
    with open(target, "w") as fh:
        json.dump({"rows": table.num_rows, "columns": table.num_columns}, fh)
''',
}

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


def _snakemake_seconds(root: Path, jobs: int) -> float:
    workdir = root / f"snakemake_{jobs}"
    workdir.mkdir()
    for name in ("table.parquet", "work.py", "job.py"):
        (workdir / name).symlink_to(root / name)
    (workdir / "Snakefile").write_text(SNAKEFILE.format(n=jobs))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--quiet", "all"], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(kind: str, jobs: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pq.write_table(pa.table({"frame_index": list(range(300)), "path": [f"f/{i:08d}.jpg" for i in range(300)]}),
                       root / "table.parquet")
        (root / "work.py").write_text(WORK[kind])
        (root / "job.py").write_text("import sys\nsys.path.insert(0, '.')\nfrom work import work\n"
                                     "work(snakemake.input[0], snakemake.output[0])\n")
        small = jobs // 2
        small_s, full_s = _snakemake_seconds(root, small), _snakemake_seconds(root, jobs)
        one = root / "one"
        one.mkdir()
        code = f"{WORK[kind]}\nfor i in range({jobs}):\n    work('table.parquet', 'one/' + str(i) + '.json')\n"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
        single_s = time.perf_counter() - started
    marginal = (full_s - small_s) / (jobs - small)  # one more job, start-up excluded
    return {"per_job": marginal - single_s / jobs, "small": small, "small_s": small_s, "full_s": full_s,
            "single_s": single_s, "startup": full_s - jobs * marginal}


def run(jobs: int = 40) -> dict:
    empty, parquet = measure("empty", jobs), measure("parquet", jobs)
    return {"measure": "local execution overhead per job (--cores 1)", "value": empty["per_job"],
            "baseline": "same work in one process", "baseline_value": empty["single_s"] / jobs,
            "ratio": empty["full_s"] / empty["single_s"], "goal": "<= 0.5 s per job", "met": empty["per_job"] <= 0.5,
            "detail": f"marginal cost of an empty-ish `script:` job ({empty['small']} vs {jobs} jobs: "
                      f"{empty['small_s']:.1f} s vs {empty['full_s']:.1f} s); Snakemake start-up once per run "
                      f"{empty['startup']:.1f} s; a job that reads a parquet file: {parquet['per_job']:.2f} s "
                      f"(its imports, pandas included, in every job process)"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=40)
    print(run(parser.parse_args().jobs))
