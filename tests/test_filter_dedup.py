"""Filter decisions and dedup algorithms on known inputs."""

import numpy as np
import pandas as pd
import pytest

from video_miner.dedup import SearchSettings, global_dedup, temporal_dedup, threshold_for
from video_miner.filtering import decide, score_column


def frames_table(videos):
    rows = [{"video_id": v, "frame_index": i, "timestamp_s": i / 10, "width": 8, "height": 8, "path": f"{v}/{i}.jpg"}
            for v, n in videos for i in range(n)]
    return pd.DataFrame(rows)


def test_threshold_per_class_override_and_best_class():
    frames = frames_table([("a", 4)])
    scores = np.array([[0.1, 0.2], [0.3, 0.1], [0.05, 0.15], [np.nan, np.nan]], np.float32)
    table = decide(frames, scores, ["cat", "dog"], threshold=0.25, class_thresholds={"dog": 0.15})
    assert [c for c in table.columns if c.startswith("score:")] == [score_column("cat"), score_column("dog")]
    assert table["passed"].tolist() == [True, True, True, False]
    assert table["best_class"].tolist()[:3] == ["dog", "cat", "dog"] and pd.isna(table["best_class"][3])
    assert table["best_score"].tolist()[:3] == pytest.approx([0.2, 0.3, 0.15])


def test_keep_top_k_per_video_with_ties_to_the_earlier_frame():
    frames = frames_table([("a", 4), ("b", 3)])
    best = np.array([0.5, 0.9, 0.5, 0.1, 0.3, 0.2, 0.4], np.float32)[:, None]
    table = decide(frames, best, ["cat"], threshold=0.0, keep_top_k=2)
    assert table["passed"].tolist() == [True, True, False, False, True, False, True]
    table = decide(frames, best, ["cat"], threshold=0.35, keep_top_k=2)
    assert table["passed"].tolist() == [True, True, False, False, False, False, True]


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


def test_cross_video_skips_empty_shards(tmp_path):
    from video_miner.dedup import cross_video, embed_shard

    class Fixed:
        def __init__(self, vectors):
            self.vectors = vectors

        def process(self, paths):
            return self.vectors[: len(paths)]

    frames = frames_table([("a", 3)])
    vectors, _ = clustered(3, 1, dim=8)
    embed_shard(frames, lambda: Fixed(vectors), 0.9, tmp_path / "s1")
    embed_shard(frames.iloc[:0], lambda: pytest.fail("no model for an empty shard"), 0.9, tmp_path / "s2")
    table, index = cross_video([str(tmp_path / "s2"), str(tmp_path / "s1")], 0.9, SearchSettings())
    assert table.num_rows == 3 and all(table.column("kept").to_pylist()) and index.ntotal == 3
    empty, _ = cross_video([str(tmp_path / "s2")], 0.9, SearchSettings())
    assert empty.num_rows == 0
