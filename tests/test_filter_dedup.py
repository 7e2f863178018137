"""Filter decisions and dedup algorithms on known inputs."""

import numpy as np
import pandas as pd
import pytest

from video_miner.dedup import SearchSettings, global_dedup, temporal_dedup, threshold_for
from video_miner.filtering import decide, filter_shard, score_column
from video_miner.shardjob import VideoCache
from video_miner.tables.frame import FRAME, FRAME_COLUMNS


def frames_table(videos):
    rows = [{"video_id": v, "frame_index": i, "frame_id": f"{v}/{i:08d}", "timestamp_s": i / 10, "width": 8,
             "height": 8, "path": f"{v}/{i}.jpg"}
            for v, n in videos for i in range(n)]
    return pd.DataFrame(rows)


def test_threshold_per_class_override_and_best_class():
    frames = frames_table([("a", 4)])
    scores = np.array([[0.1, 0.2], [0.3, 0.1], [0.05, 0.15], [np.nan, np.nan]], np.float32)
    table = decide(frames, scores, ["cat", "dog"], threshold=0.25, class_thresholds={"dog": 0.15})
    assert [c for c in table.columns if c.startswith("score:")] == [score_column("cat"), score_column("dog")]
    assert table["kept"].tolist() == [True, True, True, False]
    assert table["reason"].tolist() == ["", "", "", "unreadable image"]
    assert table.columns.tolist()[: len(FRAME_COLUMNS)] == FRAME_COLUMNS
    assert table["best_class"].tolist()[:3] == ["dog", "cat", "dog"] and pd.isna(table["best_class"][3])
    assert table["best_score"].tolist()[:3] == pytest.approx([0.2, 0.3, 0.15])


def test_keep_top_k_per_video_with_ties_to_the_earlier_frame():
    frames = frames_table([("a", 4), ("b", 3)])
    best = np.array([0.5, 0.9, 0.5, 0.1, 0.3, 0.2, 0.4], np.float32)[:, None]
    table = decide(frames, best, ["cat"], threshold=0.0, keep_top_k=2)
    assert table["kept"].tolist() == [True, True, False, False, True, False, True]
    outside = "not in the top 2 of its video"
    assert table["reason"].tolist() == ["", "", outside, outside, "", outside, ""]
    table = decide(frames, best, ["cat"], threshold=0.35, keep_top_k=2)
    assert table["kept"].tolist() == [True, True, False, False, False, False, True]
    below = "below threshold"
    assert table["reason"].tolist() == ["", "", outside, below, below, below, ""]


def unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_temporal_dedup_keeps_the_first_of_each_run():
    rng = np.random.default_rng(0)
    scenes = unit(rng.standard_normal((3, 16)))
    sequence = scenes[[0, 0, 0, 0, 1, 1, 0, 2, 2]] + 0.01 * rng.standard_normal((9, 16)).astype(np.float32)
    result = temporal_dedup(unit(sequence), 0.9)
    assert np.flatnonzero(result.kept).tolist() == [0, 4, 6, 7]
    assert result.duplicate_of.tolist() == [-1, 0, 0, 0, -1, 4, -1, -1, 7]


def clustered(n_clusters, per_cluster, dim=32, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((n_clusters, dim)))
    labels = np.repeat(np.arange(n_clusters), per_cluster)
    return unit(centres[labels] + noise * rng.standard_normal((len(labels), dim))), labels


def test_global_dedup_keeps_one_per_cluster_and_points_inside_it():
    vectors, labels = clustered(20, 5)
    result, index = global_dedup(vectors, 0.9)
    assert result.kept.sum() == 20 and index.ntotal == 100
    dups = np.flatnonzero(~result.kept)
    assert (labels[result.duplicate_of[dups]] == labels[dups]).all()
    assert (result.duplicate_of[dups] < dups).all()


def test_global_dedup_is_independent_of_chunking_and_ivf_matches_exact():
    vectors, _ = clustered(300, 4, seed=1)
    exact, _ = global_dedup(vectors, 0.9, SearchSettings(chunk=7))
    chunked, _ = global_dedup(vectors, 0.9, SearchSettings(chunk=1000))
    ivf, index = global_dedup(vectors, 0.9, SearchSettings(exact_max=100, nlist=16, nprobe=16, train_size=1200))
    assert type(index).__name__ == "IndexIVFFlat"
    assert (exact.kept == chunked.kept).all() and (exact.kept == ivf.kept).all()
    assert (exact.duplicate_of == ivf.duplicate_of).all()


def test_phash_threshold_is_the_hamming_bound():
    assert threshold_for({"backend": "phash", "phash_max_distance": 8}) == pytest.approx(0.75)
    assert threshold_for({"backend": "model", "threshold": 0.9, "phash_max_distance": 8}) == 0.9


class Fixed:
    """A fake frame model: fixed rows, one per path; counts what it is asked."""

    def __init__(self, vectors, calls):
        self.vectors = vectors
        self.calls = calls

    def process(self, paths):
        self.calls.append(list(paths))
        return self.vectors[: len(paths)]


def test_cross_video_skips_empty_shards(tmp_path):
    from video_miner.dedup import EMBEDDINGS_FILE, cross_video, embed_shard, write_embed_table

    frames = frames_table([("a", 3)])
    vectors, _ = clustered(3, 1, dim=8)
    cache = VideoCache(tmp_path / "cache" / "s1", {"backend": "model", "model": "fixed"})
    table, record = embed_shard(frames, lambda: Fixed(vectors, []), 0.9, tmp_path / "s1", cache)
    write_embed_table(tmp_path / "s1.parquet", table, record)
    assert record["frames"] == record["kept"] == 3 and table["kept"].all()
    assert sorted(p.name for p in (tmp_path / "s1").iterdir()) == ["a.faiss", EMBEDDINGS_FILE]
    empty_cache = VideoCache(tmp_path / "cache" / "s2", {"backend": "model", "model": "fixed"})
    table, record = embed_shard(frames.iloc[:0], lambda: pytest.fail("no model for an empty shard"), 0.9,
                                tmp_path / "s2", empty_cache)
    write_embed_table(tmp_path / "s2.parquet", table, record)
    assert record["frames"] == 0 and len(FRAME.read(tmp_path / "s2.parquet")) == 0
    table, index = cross_video([str(tmp_path / "s2.parquet"), str(tmp_path / "s1.parquet")],
                               [str(tmp_path / "s2"), str(tmp_path / "s1")], ["s2", "s1"], 0.9, SearchSettings())
    assert table.num_rows == 3 and all(table.column("kept").to_pylist()) and index.ntotal == 3
    assert table.column("shard").to_pylist() == ["s1"] * 3
    assert table.column("frame_id").to_pylist() == [f"a/{i:08d}" for i in range(3)]
    empty, _ = cross_video([str(tmp_path / "s2.parquet")], [str(tmp_path / "s2")], ["s2"], 0.9, SearchSettings())
    assert empty.num_rows == 0


def test_embed_shard_writes_aligned_embeddings_and_names_each_duplicates_frame(tmp_path):
    from video_miner.dedup import EMBEDDINGS_FILE, embed_shard

    frames = frames_table([("a", 4), ("b", 2)])
    scenes = unit(np.eye(8)[:3])
    vectors = scenes[[0, 0, 1, 0, 2, 2]]
    vectors[1] = np.nan  # a: frame 1 unreadable
    table, record = embed_shard(frames.iloc[::-1], lambda: Fixed(vectors, []), 0.9, tmp_path / "s",
                                VideoCache(tmp_path / "cache", {}), store_dtype="float32")
    assert table[["video_id", "frame_index"]].values.tolist() == frames[["video_id", "frame_index"]].values.tolist()
    assert table["kept"].tolist() == [True, False, True, True, True, False]
    assert table["reason"][1] == "unreadable image"
    assert table["duplicate_of"].isna().tolist() == [True] * 5 + [False]
    assert table["duplicate_of"][5] == 0 and table["reason"][5].startswith("near-duplicate of frame 0")
    stored = np.load(tmp_path / "s" / EMBEDDINGS_FILE)
    assert stored.shape == (6, 8) and (stored[1] == 0).all()
    assert np.allclose(stored[[0, 2, 3, 4, 5]], vectors[[0, 2, 3, 4, 5]])
    assert record == {"frames": 6, "kept": 4, "videos": 2}


FILTER_SETTINGS = {"model": "fake", "classes": ["cat", "dog"], "threshold": 0.25}


def scorer_factory(calls, made):
    """A fake text scorer: a frame's score for every class is its frame index / 10."""
    classes = FILTER_SETTINGS["classes"]

    class Scorer:
        def process(self, paths):
            calls.append(list(paths))
            index = np.array([float(p.rsplit("/", 1)[1].split(".")[0]) for p in paths], np.float32)
            return np.repeat(index[:, None] / 10, len(classes), axis=1)

    def factory(prompts):
        made.append(list(prompts))
        return Scorer()

    return factory


def test_filter_shard_reuses_cached_videos_and_recomputes_changed_settings(tmp_path):
    frames = frames_table([("a", 4), ("b", 3)])
    calls, made = [], []
    cache = VideoCache(tmp_path / "cache", {"model": "fake", "classes": FILTER_SETTINGS["classes"]})
    first, record = filter_shard(frames, scorer_factory(calls, made), FILTER_SETTINGS, cache)
    assert made == [["cat", "dog"]] and sum(len(c) for c in calls) == 7  # one model, every frame scored once
    assert first["kept"].tolist() == [False, False, False, True, False, False, False]
    assert record["frames"] == 7 and record["kept"] == 1
    calls.clear(), made.clear()
    again, _ = filter_shard(frames, scorer_factory(calls, made), FILTER_SETTINGS, cache)
    assert made == [] and calls == []  # every video came from the cache: the model is not even loaded
    pd.testing.assert_frame_equal(again, first)
    # the shard gains a video: only its frames are scored
    grown = pd.concat([frames, frames_table([("c", 5)])], ignore_index=True)
    _, record = filter_shard(grown, scorer_factory(calls, made), FILTER_SETTINGS, cache)
    assert made == [["cat", "dog"]] and calls == [[f"c/{i}.jpg" for i in range(5)]]
    assert record["frames"] == 12 and record["kept"] == 1 + 2
    # a video whose frames changed upstream (as many, but others) is scored again, the rest not
    calls.clear(), made.clear()
    moved = pd.concat([frames_table([("a", 8)]).iloc[4:], frames_table([("b", 3)])], ignore_index=True)
    table, _ = filter_shard(moved, scorer_factory(calls, made), FILTER_SETTINGS, cache)
    assert calls == [[f"a/{i}.jpg" for i in range(4, 8)]]
    assert table["kept"].tolist() == [True] * 4 + [False] * 3
    # another model (another fingerprint): every video is scored again
    calls.clear(), made.clear()
    other = VideoCache(tmp_path / "cache", {"model": "other", "classes": FILTER_SETTINGS["classes"]})
    filter_shard(frames, scorer_factory(calls, made), {**FILTER_SETTINGS, "model": "other"}, other)
    assert made == [["cat", "dog"]] and sorted(p for c in calls for p in c) == sorted(frames["path"])


def test_embed_shard_reuses_cached_videos_and_recomputes_changed_settings(tmp_path):
    from video_miner.dedup import embed_shard

    frames = frames_table([("a", 3), ("b", 2)])
    vectors = unit(np.eye(8)[[0, 0, 1, 2, 3]])
    calls, made = [], []

    def factory():
        made.append(1)
        return Fixed(vectors, calls)

    settings = {"backend": "model", "model": "fixed"}
    first, _ = embed_shard(frames, factory, 0.9, tmp_path / "s1", VideoCache(tmp_path / "cache", settings))
    assert len(made) == 1 and sum(len(c) for c in calls) == 5
    calls.clear(), made.clear()
    again, _ = embed_shard(frames, factory, 0.9, tmp_path / "s2", VideoCache(tmp_path / "cache", settings))
    assert made == [] and calls == []
    pd.testing.assert_frame_equal(again, first)
    assert (np.load(tmp_path / "s1" / "embeddings.npy") == np.load(tmp_path / "s2" / "embeddings.npy")).all()
    changed = {"backend": "model", "model": "another"}
    embed_shard(frames, factory, 0.9, tmp_path / "s3", VideoCache(tmp_path / "cache", changed))
    assert len(made) == 1 and sum(len(c) for c in calls) == 5
