"""Per-video resume inside shard jobs: what is cached, when it is reused, when redone."""

import os

import numpy as np
import pandas as pd

from video_miner.shardjob import VideoCache, cached_frame_results, cached_map, link_file


def test_cached_map_reuses_records_made_with_the_same_settings(tmp_path):
    calls = []

    def work(video_id):
        calls.append(video_id)
        return {"n": len(video_id)}

    first = cached_map(VideoCache(tmp_path, {"quality": 90}), ["a", "bb"], work, workers=2)
    assert first == {"a": {"n": 1}, "bb": {"n": 2}} and sorted(calls) == ["a", "bb"]
    cached_map(VideoCache(tmp_path, {"quality": 90}), ["a", "bb", "ccc"], work)
    assert sorted(calls) == ["a", "bb", "ccc"]  # only the new video
    cached_map(VideoCache(tmp_path, {"quality": 80}), ["a"], work)
    assert calls[-1] == "a"  # other settings: done again
    cached_map(VideoCache(tmp_path, {"quality": 80}), ["a"], work, reusable=lambda record: False)
    assert calls.count("a") == 3


def test_prune_forgets_videos_that_left_the_shard(tmp_path):
    cache = VideoCache(tmp_path, {})
    cached_map(cache, ["a", "b"], lambda v: {})
    (cache.path("b")).mkdir()
    cache.prune(["a"])
    assert cache.load("a") == {} and cache.load("b") is None and not cache.path("b").exists()


def frames(tmp_path, spec):
    rows = []
    for video_id, count in spec:
        for i in range(count):
            path = tmp_path / f"{video_id}-{i}.jpg"
            if not path.exists():
                path.write_bytes(b"x" * (i + 1))
            rows.append({"video_id": video_id, "frame_index": i, "path": str(path)})
    return pd.DataFrame(rows)


def test_frame_results_are_computed_once_per_video_and_again_when_frames_change(tmp_path):
    seen = []

    def compute(part):
        seen.append(sorted(set(part["video_id"])))
        return np.arange(len(part), dtype=np.float32)[:, None] + 10 * len(seen)

    cache = VideoCache(tmp_path / "cache", {"model": "m"})
    table = frames(tmp_path, [("a", 3), ("b", 2)])
    first = cached_frame_results(cache, table, compute, chunk_frames=3)
    assert seen == [["a"], ["b"]]  # whole videos per chunk, saved as each chunk finishes
    again = cached_frame_results(cache, table, compute)
    assert len(seen) == 2 and all(np.array_equal(first[v], again[v]) for v in first)
    # A frame of b made again (new settings upstream): b only is recomputed.
    path = table.loc[table["video_id"] == "b", "path"].iloc[0]
    os.utime(path, ns=(1, 1))
    cached_frame_results(cache, table, compute)
    assert seen[-1] == ["b"] and len(seen) == 3
    # The stage before kept other frames of a (same count, other numbers): recomputed.
    other = table.assign(frame_index=np.where(table["video_id"] == "a", table["frame_index"] + 10,
                                              table["frame_index"]))
    cached_frame_results(cache, other, compute)
    assert seen[-1] == ["a"] and len(seen) == 4


def test_json_results_round_trip(tmp_path):
    cache = VideoCache(tmp_path / "cache", {})
    table = frames(tmp_path, [("a", 2)])
    boxes = [[[0.0, 0.0, 1.0, 1.0, 0.5, 0.0]], None]
    assert cached_frame_results(cache, table, lambda part: boxes)["a"] == boxes
    assert cached_frame_results(cache, table, lambda part: 1 / 0)["a"] == boxes  # from the cache


def test_link_file_hard_links_and_replaces(tmp_path):
    (tmp_path / "1.jpg").write_bytes(b"jpg")
    (tmp_path / "out" / "v").mkdir(parents=True)
    (tmp_path / "out" / "v" / "1.jpg").write_bytes(b"stale")
    link_file(tmp_path / "1.jpg", tmp_path / "out" / "v" / "1.jpg")
    assert os.path.samefile(tmp_path / "1.jpg", tmp_path / "out" / "v" / "1.jpg")


def test_nearby_shards_lend_their_records_made_with_the_same_settings(tmp_path):
    for shard, key in (("urls-abcdef-00003", {"q": 1}), ("urls-abcdef-00009", {"q": 1}),
                       ("other-123456-00004", {"q": 1}), ("urls-abcdef-00005", {"q": 2})):
        cached_map(VideoCache(tmp_path / shard, key), ["v"], lambda v, shard=shard: {"from": shard})
    here = VideoCache(tmp_path / "urls-abcdef-00004", {"q": 1})
    # the same list, two shards away at most, the same settings: only shard 3
    assert list(here.nearby("v")) == [{"from": "urls-abcdef-00003"}]
