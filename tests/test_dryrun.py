import math
import os

from conftest import run_workflow


def test_dry_run_of_1000_urls_and_20_shards_plans_one_job_per_shard_and_needs_no_network(tmp_path):
    urls = [f"https://videos.invalid/clip/{i}.mp4" for i in range(990)]
    urls += [f"https://youtu.be/{i:011d}" for i in range(10)]
    (tmp_path / "urls.txt").write_text("# a big list\n" + "\n".join(urls) + "\n")
    # Dataset shards: one shard (job per stage) each, and none is fetched to plan the run.
    archives = [f"hf://datasets/org/name/data/shard-{i:06d}.tar" for i in range(10)]
    archives += [f"s3://bucket/clips/shard-{i:06d}.tar" for i in range(10)]
    (tmp_path / "shards.txt").write_text("\n".join(archives) + "\n")
    # Any attempt to fetch would go to a dead proxy and fail.
    os.environ["ALL_PROXY"] = os.environ["HTTPS_PROXY"] = "http://127.0.0.1:9"
    try:
        proc = run_workflow(tmp_path, {"url_files": ["urls.txt"], "archives": {"lists": ["shards.txt"]},
                                       "shard_size": 32}, "-n", "--quiet", "rules")
    finally:
        del os.environ["ALL_PROXY"], os.environ["HTTPS_PROXY"]
    table = {line.split()[0]: int(line.split()[1]) for line in proc.stdout.splitlines()
             if len(line.split()) == 2 and line.split()[1].isdigit()}
    shards = math.ceil(1000 / 32) + len(archives)
    # The default stages that run per shard (dedup is on): one job each per shard, none per video.
    assert {rule: table[rule] for rule in ("download", "probe", "extract", "embed")} == dict.fromkeys(
        ("download", "probe", "extract", "embed"), shards)
    per_shard = ("download", "probe", "extract", "embed", "total")
    run_wide = {rule: n for rule, n in table.items() if rule not in per_shard}
    assert set(run_wide) == {"run_config", "video_dedup", "dedup", "splits", "summary", "dataset", "report_plots",
                             "all"}
    assert all(n == 1 for n in run_wide.values())
    assert table["total"] == 4 * shards + len(run_wide)
    assert not (tmp_path / "results").exists()
