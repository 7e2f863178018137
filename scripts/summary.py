"""Summarise the run: results/pipeline_result.json (with the splits' report), the video table
results/metadata/videos.* and results/status.tsv rendered from it."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.logs import log_to_file
from video_miner.splits import describe
from video_miner.sources import collect_videos
from video_miner.summary import summarize_files

log_to_file(snakemake.log[0])
# The search results as this job got them (staged from object storage on a remote run).
searches = dict(zip(snakemake.params.inputs["search"]["queries"], snakemake.input.searches))
origins = {v.video_id: v.origin for v in collect_videos(snakemake.params.inputs, searches=searches).videos.values()}
summary = summarize_files(
    {name: list(snakemake.input[name]) for name in snakemake.params.stages},
    list(snakemake.params.rejected),
    snakemake.params.duplicates,
    snakemake.output.summary,
    snakemake.output.status,
    origins=origins,
    search_paths=list(snakemake.input.searches),
    metadata_dir=Path(snakemake.output.videos[0]).parent,
    splits_path=snakemake.input.splits,
)
videos = summary["videos"]
logging.info("%d videos: %d ok, %d failed; %d frames extracted", videos["total"], videos["ok"], videos["failed"],
             summary["frames"]["extracted"])
splits = summary["splits"]
logging.info("splits: %s", describe(splits))
for note in splits["notes"]:
    logging.warning("splits: %s", note)
