"""What ``video-miner filter|deduplicate|detect -i DIR -o DIR`` leaves in ``-o``: the images
the stage kept, under their paths in the input folder (so ``-o`` is the next command's
``-i`` and every image keeps its key), and the stage's table beside them."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from video_miner.fsutil import safe_name
from video_miner.stages import stage

# The Snakemake targets of each stage command: the workflow up to its stage (the summary
# reads every enabled stage's tables) and, for detection, the COCO file.
TARGETS = {
    "filter": ["results/run_config.yaml", "results/pipeline_result.json"],
    "dedup": ["results/run_config.yaml", "results/pipeline_result.json"],
    "detect": ["results/run_config.yaml", "results/pipeline_result.json", "results/detections/annotations.json"],
}
# The column of the output table with each kept image's path in the output folder.
FILE_FIELD = pa.field("file", pa.string())


def stage_tables(workdir: str | os.PathLike, name: str, config: dict) -> list[Path]:
    """The tables of a stage in a run of ``config`` in ``workdir`` (of this run's shards only)."""
    from video_miner.sources import assign_shards, collect_videos

    current = stage(name)
    if not current.per_shard:
        return [Path(workdir, current.table())]
    shards = assign_shards(collect_videos(config, str(workdir)), config["shard_size"])
    return [Path(workdir, current.table(shard)) for shard in shards]


def output_name(image: str | None, frame_path: str, video_id: str, roots: list[str]) -> str:
    """Where a kept frame goes in the output: an image's path under the input folder it came
    from; a video's frame under the video's id."""
    if image:
        for root in roots:
            rel = os.path.relpath(image, root)
            if not rel.startswith(".."):
                return Path(rel).as_posix()
    return f"{safe_name(video_id)}/{Path(frame_path).name}"


def collect_kept(workdir: str | os.PathLike, name: str, output: str | os.PathLike, inputs: list[str]) -> dict:
    """Copy the images stage ``name`` kept (as its funnel counts them: detection's, those
    with detections) into ``output`` and write its table there as ``<stage>.parquet``
    (every row, kept or not, with its reason; ``file``: the kept image's path in
    ``output``). Images a former command put there are replaced."""
    from video_miner.registry import run_config
    from video_miner import framestore
    from video_miner.shardjob import link_file

    workdir, output = Path(workdir), Path(output)
    config = run_config(workdir)
    table = pa.concat_tables([pq.read_table(p) for p in stage_tables(workdir, name, config)],
                             promote_options="permissive")
    extracted = pa.concat_tables([pq.read_table(p, columns=["frame_id", "image"])
                                  for p in stage_tables(workdir, "extract", config)])
    images = dict(zip(extracted.column("frame_id").to_pylist(), extracted.column("image").to_pylist()))
    table_path = output / f"{name}.parquet"
    if table_path.is_file():  # a former command's images: this run decides anew
        for old in pq.read_table(table_path, columns=["file"]).column("file").to_pylist():
            if old:
                Path(output, old).unlink(missing_ok=True)
    # What the stage keeps as the funnel counts it: detection's frames with detections.
    counted = stage(name).counted
    files = []
    for frame, video, path, kept in zip(*(table.column(c).to_pylist() for c in ("frame_id", "video_id", "path",
                                                                                counted))):
        if not kept:
            files.append(None)
            continue
        target = output_name(images.get(frame), path, video, inputs)
        source = images.get(frame) or str(workdir / path)
        if framestore.is_packed(source):
            Path(output, target).unlink(missing_ok=True)
            framestore.copy_to(source, output / target)
        else:
            link_file(source, output / target)
        files.append(target)
    table = table.append_column(FILE_FIELD, pa.array(files, pa.string()))
    from video_miner.fsutil import atomic_path

    with atomic_path(table_path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    return {"images": len(images), "kept": sum(f is not None for f in files), "table": str(table_path)}
