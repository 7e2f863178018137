"""Captions: the OpenAI-compatible backend against a fake server on 127.0.0.1 (retries,
errors, the key, the workers limit, the spend guard, the cache), Florence-2 through a
tiny random-weight checkpoint (wiring only), and the items of frames and clips."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from conftest import FakeApi
from video_miner.captions import (CaptionSettings, ItemCache, SpendLedger, caption_items, clip_items, clip_times,
                                  frame_items, frames_at, ledger_path, make_captioner, parse_answer)

KEY = "sk-caption-test-5e4d3c2b1a-never-write-me"
PATH = "/v1/chat/completions"


def answer(text="A cat on a mat.", prompt=50, completion=7, delay=0.0):
    return (200, {"choices": [{"message": {"role": "assistant", "content": text}}],
                  "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}, {}, delay)


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv("TEST_CAPTION_KEY", KEY)
    server = FakeApi()
    server.plan[PATH] = [answer()]
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("caption-frames")
    rows = []
    for video in ("va", "vb"):
        for index in (0, 10):
            path = root / f"{video}-{index}.jpg"
            Image.new("RGB", (64, 48), (index * 10, 80, 120)).save(path)
            rows.append({"video_id": video, "frame_index": index, "path": str(path)})
    return pd.DataFrame(rows)


def settings(url: str, **extra) -> CaptionSettings:
    api = {"base_url": url + "/v1", "model": "test/vlm", "key_env": "TEST_CAPTION_KEY", "max_workers": 2,
           "timeout_s": 1, "retries": 2, "retry_backoff_s": 0.0, **extra.pop("api", {})}
    return CaptionSettings.from_config({"backend": "api", "api": api, **extra})


def run(s: CaptionSettings, frames: pd.DataFrame, cache_root: Path, workers: int | None = None):
    cache = ItemCache(cache_root / "shard-000000-00000", s)
    ledger = SpendLedger(ledger_path(cache.cache.root, s), s.max_items, s.max_total_tokens)
    table, record = caption_items(frame_items(frames), lambda: make_captioner(s, workers), cache, ledger,
                                  workers=workers or 8, model=s.model)
    return table.to_pandas(), record


def test_captions_are_sent_as_chat_completions_and_cached(api, frames, tmp_path):
    s = settings(api.url)
    table, record = run(s, frames, tmp_path)
    assert table["kept"].all() and set(table["caption"]) == {"A cat on a mat."}
    assert record["captioned"] == 4 and record["sent"] == 4 and record["tokens"] == {
        "prompt": 200, "completion": 28, "total": 228}
    request = api.requests[0]
    assert request["path"] == PATH and request["headers"]["Authorization"] == f"Bearer {KEY}"
    body = request["body"]
    assert body["model"] == "test/vlm" and body["max_tokens"] == 200 and body["temperature"] == 0.2
    assert body["messages"][0]["role"] == "system"
    parts = body["messages"][1]["content"]
    assert parts[0]["type"] == "text" and parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    # A rerun sends nothing; a changed prompt sends one request per item again.
    sent = len(api.requests)
    table, record = run(s, frames, tmp_path)
    assert len(api.requests) == sent and record["cached"] == 4 and table["cached"].all()
    run(settings(api.url, prompt="Name the animal."), frames, tmp_path)
    assert len(api.requests) == sent + 4
    assert api.requests[-1]["body"]["messages"][1]["content"][0]["text"] == "Name the animal."


def test_429_is_retried_400_and_401_are_recorded_not_retried(api, frames, tmp_path):
    api.plan[PATH] = [(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}, 0), answer()]
    table, _ = run(settings(api.url), frames.iloc[:1], tmp_path / "a")
    assert table["kept"].all() and len(api.requests) == 2

    api.plan[PATH] = [(400, {"error": {"message": "image too large"}}, {}, 0)]
    table, record = run(settings(api.url), frames.iloc[:1], tmp_path / "b")
    assert len(api.requests) == 3 and not table["kept"].any()
    assert table["reason"][0] == "captions API: HTTP 400: image too large"
    assert record["video_outcomes"]["va"] == {"ok": False, "reason": table["reason"][0], "captioned": 0}

    api.plan[PATH] = [(401, {"error": f"bad key {KEY}"}, {}, 0)]
    table, record = run(settings(api.url, api={"max_workers": 1}), frames, tmp_path / "c")
    assert len(api.requests) == 4  # one 401, then nothing more is sent
    assert "<redacted>" in table["reason"][0] and KEY not in "".join(table["reason"])
    assert all(r.startswith("not sent: the server refused the key") for r in table["reason"][1:])


def test_timeout_is_retried_then_recorded_and_malformed_answers(api, frames, tmp_path):
    api.plan[PATH] = [answer(delay=3)]
    table, _ = run(settings(api.url, api={"retries": 1}), frames.iloc[:1], tmp_path / "a")
    assert len(api.requests) == 2 and table["reason"][0] == "captions API: timed out after 1 s (after 2 attempts)"

    api.plan[PATH] = [(200, {"choices": []}, {}, 0)]
    table, _ = run(settings(api.url), frames.iloc[:1], tmp_path / "b")
    assert table["reason"][0].startswith("captions API: malformed answer")
    assert parse_answer({"choices": [{"message": {"content": [{"type": "text", "text": "a  dog"}]}}]}).text == "a dog"


def test_requests_in_flight_never_exceed_the_workers(api, frames, tmp_path):
    in_flight, peak, lock = [0], [0], threading.Lock()
    original = api.server.RequestHandlerClass._answer

    def counting(handler):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            original(handler)
        finally:
            with lock:
                in_flight[0] -= 1

    api.server.RequestHandlerClass.do_POST = counting
    api.plan[PATH] = [answer(delay=0.2)]
    many = pd.concat([frames] * 3, ignore_index=True).assign(frame_index=range(12))
    # max_workers 8, but the job got 3 of the api_requests resource.
    run(settings(api.url, api={"max_workers": 8}), many, tmp_path / "a", workers=3)
    assert len(api.requests) == 12 and peak[0] == 3
    peak[0] = 0
    run(settings(api.url, api={"max_workers": 2}), many, tmp_path / "b", workers=8)
    assert peak[0] == 2


def test_spend_guard_stops_sending(api, frames, tmp_path):
    table, record = run(settings(api.url, max_items=3, api={"max_workers": 1}), frames, tmp_path / "a")
    assert len(api.requests) == 3 and table["kept"].sum() == 3
    assert table["reason"].iloc[-1] == "not sent: captions.max_items (3) reached"
    assert record["video_outcomes"]["vb"]["ok"]  # held back, not failed
    assert record["failed"] == {"not sent: captions.max_items (3) reached": 1}
    # The guard holds across reruns and shards: nothing more with these settings.
    run(settings(api.url, max_items=3, api={"max_workers": 1}), frames, tmp_path / "a")
    assert len(api.requests) == 3
    # Tokens: 57 per answer, the limit 100: two items go out, then the guard stops.
    table, _ = run(settings(api.url, max_total_tokens=100, api={"max_workers": 1}), frames, tmp_path / "b")
    assert len(api.requests) == 5 and table["kept"].sum() == 2


def test_a_missing_key_stops_the_job_with_the_variable_named(api, frames, monkeypatch):
    monkeypatch.delenv("TEST_CAPTION_KEY")
    with pytest.raises(ValueError, match=r"\$TEST_CAPTION_KEY"):
        make_captioner(settings(api.url))


def test_clip_items_send_their_frames_in_order(api, videos, tmp_path):
    clips = pd.DataFrame({"video_id": ["v"], "clip_id": ["v-c0"], "start_s": [0.0], "end_s": [2.0]})
    assert clip_times(0.0, 2.0, 4) == (0.25, 0.75, 1.25, 1.75)
    images = frames_at(str(videos["h264.mp4"]), clip_times(0.0, 2.9, 4))
    assert len(images) == 4 and images[0].size == (320, 240)
    s = settings(api.url, frames_per_clip=3)
    items = clip_items(clips, {"v": str(videos["h264.mp4"])}, {"v": ["here", 1]}, s.frames_for_clip())
    cache = ItemCache(tmp_path / "shard-000000-00000", s)
    table, record = caption_items(items, lambda: make_captioner(s), cache,
                                  SpendLedger(tmp_path / "spend.json", None, None))
    body = api.requests[0]["body"]["messages"][1]["content"]
    assert body[0]["text"] == s.clip_prompt and len(body) == 4 and record["clips"] == 1
    assert table.to_pandas()["clip_id"].tolist() == ["v-c0"]
    # A clip whose video is missing is recorded, not raised.
    missing = clip_items(clips.assign(clip_id="v-c1"), {}, {}, 1)
    table, _ = caption_items(missing, lambda: make_captioner(s), cache, SpendLedger(tmp_path / "s2.json", None, None))
    assert table.to_pandas()["reason"][0].startswith("unreadable clip")


def test_florence2_captions_through_the_shared_loader(tiny_models, frames, tmp_path):
    """Random weights: the text is arbitrary; this proves the loading and task wiring."""
    from video_miner.models import LOAD_COUNTS, ModelSettings

    s = CaptionSettings.from_config({"backend": "florence2", "max_tokens": 8,
                                     "florence2": {"model": str(tiny_models["florence2"]), "task": "caption",
                                                   "num_beams": 1}})
    captioner = make_captioner(s, model_settings=ModelSettings(device="cpu"))
    assert LOAD_COUNTS[str(tiny_models["florence2"])] >= 1
    started = time.perf_counter()
    caption = captioner.caption([Image.open(frames["path"][0])], clip=False)
    assert caption.error is None or caption.error == "florence2: the caption is empty"
    assert caption.completion_tokens is None or caption.completion_tokens >= 1
    assert time.perf_counter() - started < 30


def test_the_dry_run_plan_counts_what_is_not_captioned_with_these_settings(api, frames, tmp_path):
    """`snakemake -n` reads two small tables per shard: the kept items, and the captions
    table when it was made with the same settings (newer than its inputs: nothing is sent)."""
    import os

    import pyarrow as pa

    from video_miner.captions import plan_to_send
    from video_miner.shardjob import fingerprint
    from video_miner.tables import write_parquet
    from video_miner.tables.frame import FRAME
    from video_miner.texts import CAPTION_SCHEMA

    s = settings(api.url, max_items=10)
    rows = [{**r, "frame_id": f"{r['video_id']}/{r['frame_index']}", "timestamp_s": 0.0, "width": 64, "height": 48,
             "kept": True} for r in frames.to_dict("records")]
    FRAME.write(tmp_path / "frames.parquet", FRAME.table(rows), {})
    shards = {"s-aaaaaa-00000": (str(tmp_path / "frames.parquet"), None, str(tmp_path / "captions.parquet")),
              "s-aaaaaa-00001": (str(tmp_path / "later.parquet"), None, str(tmp_path / "c1.parquet"))}
    cache = str(tmp_path / "cache" / "{shard}")
    assert plan_to_send(s, shards, cache) == ("about 4 items would be sent (api: test/vlm); 0 captioned already; "
                                              "1 of 2 shard(s) not counted yet (their frames or clips do not exist "
                                              "yet); captions.max_items lets 10 more go out")
    table, _ = run(s, frames.iloc[:3], tmp_path / "cache")
    write_parquet(tmp_path / "captions.parquet", pa.Table.from_pandas(table, schema=CAPTION_SCHEMA,
                                                                      preserve_index=False),
                  {"settings_key": fingerprint(s.cache_key())})
    later = tmp_path / "frames.parquet"  # the frames table changed since: the job reruns, 1 item is new
    os.utime(later, (later.stat().st_atime, later.stat().st_mtime + 10))
    assert plan_to_send(s, shards, cache).startswith("about 1 items would be sent (api: test/vlm); 3 captioned")
    assert "lets 7 more go out" in plan_to_send(s, shards, cache)
    assert plan_to_send(settings(api.url, prompt="Other."), shards, cache).startswith("about 4 items")


def test_parallel_jobs_share_one_api_requests_budget():
    """Each captions job asks for max_workers of the global resource api_requests, which
    both profiles cap; the job sends as many at once as it got (see the workers test)."""
    import yaml

    from conftest import REPO

    rule = (REPO / "rules" / "captions.smk").read_text()
    assert "api_requests=CAPTION_API_REQUESTS" in rule
    for profile in ("default", "slurm"):
        caps = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())["resources"]
        assert any(c.startswith("api_requests=") for c in caps), profile


def test_a_clip_whose_decoder_hangs_fails_only_its_clips(api, videos, tmp_path, monkeypatch):
    """Clips' frames are decoded in a worker process under the clip-level limits: a video
    that hangs the decoder (the library's fault hook) fails its clips with the reason, the
    other video's clips are captioned, and no decoded frame is left behind."""
    from video_miner.captions import clip_isolation
    from video_miner.workers import FAULTS_ENV, Limits

    monkeypatch.setenv(FAULTS_ENV, "captions:w=hang")
    clips = pd.DataFrame({"video_id": ["v", "v", "w"], "clip_id": ["v-c0", "v-c1", "w-c0"],
                          "start_s": [0.0, 1.0, 0.0], "end_s": [1.0, 2.0, 1.0]})
    path = str(videos["h264.mp4"])
    s = settings(api.url, frames_per_clip=2)
    items = clip_items(clips, {"v": path, "w": path}, {"v": ["here", 1], "w": ["there", 1]}, s.frames_for_clip())
    cache = ItemCache(tmp_path / "shard-000000-00000", s)
    isolation = clip_isolation(Limits.from_config({"clips_s": 2, "clips_s_per_video_s": 0}), {}, {})
    table, record = caption_items(items, lambda: make_captioner(s), cache,
                                  SpendLedger(tmp_path / "spend.json", None, None), isolation=isolation)
    rows = table.to_pandas().set_index("clip_id")
    assert rows.loc["w-c0", "reason"] == "unreadable clip: timed out after 2 s in captions"
    assert rows.loc[["v-c0", "v-c1"], "kept"].all() and len(api.requests) == 2
    assert all(len(r["body"]["messages"][1]["content"]) == 3 for r in api.requests)  # prompt + 2 frames
    assert record["video_outcomes"]["w"]["ok"] is False and record["video_outcomes"]["v"]["ok"]
    assert not list((tmp_path / "shard-000000-00000" / "clip_frames").iterdir())
