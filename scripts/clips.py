"""The curated clip export: results/clips/metadata.jsonl and .parquet, the cut files, each clip
with its provenance; taken-down videos' clips left out; and the manifest."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.texts import clip_captions, clip_transcripts, read_captions, read_segments
from video_miner.clips import clip_export, with_clip_provenance, write_clip_export
from video_miner.logs import log_to_file
from video_miner.manifest import write_manifest
from video_miner.provenance import load_takedown, taken_down, video_provenance
from video_miner.splits import video_splits
from video_miner.tables.clip import CLIP
from video_miner.tables.video import VIDEO

log_to_file(snakemake.log[0])
tables = {name: CLIP.read(list(snakemake.input[name])) for name in snakemake.params.stages}
duplicates = {}
if snakemake.input.keep:  # the videos the run-wide video stage dropped (copies), with the reason
    rows = VIDEO.read(list(snakemake.input.keep), columns=["reason"])
    duplicates = dict(zip(rows.loc[~rows["kept"].astype(bool), "video_id"], rows.loc[~rows["kept"].astype(bool), "reason"]))
cut = CLIP.read(list(snakemake.input.cut)) if snakemake.input.cut else None
captions = clip_captions(read_captions(snakemake.input.captions)) if snakemake.input.captions else None
first = tables[snakemake.params.stages[0]]
splits = video_splits(first["video_id"], VIDEO.read([snakemake.input.splits], columns=["split"]),
                      snakemake.params.splits["ratios"], snakemake.params.splits["seed"])
rows = clip_export(tables, snakemake.params.scores, duplicates, cut, captions, splits)
if snakemake.input.segments:
    rows["transcript"] = rows["clip_id"].map(clip_transcripts(read_segments(snakemake.input.segments), rows))
run = snakemake.params.run
downloads = VIDEO.read(list(snakemake.input.downloads))
removed = taken_down(load_takedown(snakemake.params.takedown, snakemake.input.takedown), downloads)
gone = rows["video_id"].isin(removed)
rows = with_clip_provenance(rows[~gone].reset_index(drop=True), video_provenance(downloads, run["run_id"]))
out_dir = Path(snakemake.output.metadata[0]).parent
result = write_clip_export(out_dir, rows, cut)
provenance = video_provenance(downloads[downloads["video_id"].isin(set(rows["video_id"]))], run["run_id"])
per_split = {str(k): int(v) for k, v in rows[rows["kept"]].groupby("split").size().items()}
write_manifest(snakemake.output.manifest, run, {"clips": result["clips"], "kept": result["kept"], "splits": per_split},
               provenance, snakemake.input.summary,
               files=[*snakemake.output.metadata, *sorted(p for p in Path(snakemake.output.files).rglob("*") if p.is_file())])
if removed:
    logging.info("takedown: %d clips of %d videos removed", int(gone.sum()), len(removed))
logging.info("clip export: %d clips, %d kept, %d files; kept per split: %s", result["clips"], result["kept"],
             result["files"], per_split)
