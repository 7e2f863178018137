import json
import os
import re

import pytest

from video_miner.sources import ConfigError, assign_shards, collect_videos, read_url_file


def test_url_file_skips_blanks_and_comments_but_keeps_fragments(tmp_path):
    listing = tmp_path / "urls.txt"
    listing.write_text("# my list\n\nhttps://a.example/x.mp4  # inline note\n   \n  # indented comment\nhttps://b.example/y.mp4#t=5\n")
    assert list(read_url_file(listing)) == [(3, "https://a.example/x.mp4"), (6, "https://b.example/y.mp4#t=5")]


def test_inputs_combine_and_duplicates_collapse(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "a.txt").write_text("https://youtu.be/dQw4w9WgXcQ\nhttps://example.com/v.mp4\n")
    (tmp_path / "clips" / "sub").mkdir(parents=True)
    for name in ("one.mp4", "sub/two.MKV", "notes.txt"):
        (tmp_path / "clips" / name).write_bytes(b"x")
    config = {
        "urls": ["https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=1", "ftp://nope/a.mp4"],
        "url_files": ["lists/a.txt"],
        "local_videos": ["clips", "clips/one.mp4", "later/generated.mp4"],
        "local_extensions": [".mp4", ".mkv"],
    }
    collection = collect_videos(config, root=str(tmp_path))
    by_kind = {}
    for source in collection.videos.values():
        by_kind.setdefault(source.kind, []).append(source.location)
    assert by_kind["url"] == ["https://www.youtube.com/watch?v=dQw4w9WgXcQ", "https://example.com/v.mp4"]
    assert by_kind["local"] == ["clips/one.mp4", "clips/sub/two.MKV", "later/generated.mp4"]
    assert collection.duplicates == 2  # the youtu.be form and clips/one.mp4 listed again
    assert collection.rejected == [
        {"input": "ftp://nope/a.mp4", "origin": "urls[1]", "reason": pytest.approx(collection.rejected[0]["reason"])}
    ]
    assert "only http and https" in collection.rejected[0]["reason"]
    assert collection.videos["dQw4w9WgXcQ"].origin == "urls[0]"


def test_missing_url_file_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="url_files: cannot read 'nope.txt'"):
        collect_videos({"url_files": ["nope.txt"]}, root=str(tmp_path))


def test_local_entry_that_is_neither_folder_nor_video_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="local_videos: 'missing_folder'"):
        collect_videos({"local_videos": ["missing_folder"], "local_extensions": [".mp4"]}, root=str(tmp_path))


def test_shards_are_stable_when_lists_grow(tmp_path):
    (tmp_path / "a.txt").write_text("".join(f"https://a.example/{i}.mp4\n" for i in range(5)))
    config = {"urls": [f"https://u.example/{i}.mp4" for i in range(3)], "url_files": ["a.txt"]}
    before = assign_shards(collect_videos(config, root=str(tmp_path)), shard_size=2)
    assert [len(v) for v in before.values()] == [2, 1, 2, 2, 1]
    config["urls"].append("https://u.example/new.mp4")
    with open(tmp_path / "a.txt", "a") as fh:
        fh.write("https://a.example/new.mp4\n")
    after = assign_shards(collect_videos(config, root=str(tmp_path)), shard_size=2)
    changed = {name for name in before if before[name] != after.get(name)}
    assert len(changed) == 2  # only the last shard of each list gained a video
    assert all(after[name] == videos for name, videos in before.items() if name not in changed)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", name) for name in after)


def test_what_a_folder_holds_but_cannot_be_a_video_is_rejected_with_its_reason(tmp_path):
    clips = tmp_path / "clips"
    (clips / "sub").mkdir(parents=True)
    (clips / "good.mp4").write_bytes(b"x")
    (clips / "sub" / "gone.mp4").symlink_to(tmp_path / "deleted.mp4")
    (clips / "loop.mp4").symlink_to(clips / "loop.mp4")
    (clips / "notes.txt").symlink_to(tmp_path / "deleted.txt")  # not a video by its name: not a candidate
    os.mkfifo(clips / "pipe.mp4")
    (clips / os.fsdecode(b"caf\xe9.mp4")).write_bytes(b"x")  # Latin-1 bytes in the name
    (tmp_path / "listed.mp4").symlink_to(tmp_path / "deleted.mp4")
    collection = collect_videos({"local_videos": ["clips", "listed.mp4"], "local_extensions": [".mp4"]},
                                root=str(tmp_path))
    assert [v.location for v in collection.videos.values()] == ["clips/good.mp4"]
    rejected = {r["input"]: (r["origin"], r["reason"]) for r in collection.rejected}
    deleted = repr(str(tmp_path / "deleted.mp4"))
    assert rejected == {
        "clips/caf\\udce9.mp4": ("clips", "file name is not valid UTF-8: 'clips/caf\\udce9.mp4'"),
        "clips/loop.mp4": ("clips", f"broken symbolic link: 'clips/loop.mp4' -> {str(clips / 'loop.mp4')!r}"),
        "clips/pipe.mp4": ("clips", "not a regular file: 'clips/pipe.mp4'"),
        "clips/sub/gone.mp4": ("clips", f"broken symbolic link: 'clips/sub/gone.mp4' -> {deleted}"),
        "listed.mp4": ("listed.mp4", f"broken symbolic link: 'listed.mp4' -> {deleted}"),
    }
    json.dumps(collection.rejected).encode("utf-8")  # the summary can record them


def test_every_missing_list_and_folder_is_reported_at_once(tmp_path):
    (tmp_path / "a.txt").write_text("https://a.example/1.mp4\n")
    config = {"url_files": ["nope.txt", "a.txt", "lists"], "local_videos": ["gone_folder", "clip.mov"],
              "local_extensions": [".mp4"]}
    (tmp_path / "lists").mkdir()
    with pytest.raises(ConfigError) as info:
        collect_videos(config, root=str(tmp_path))
    assert str(info.value).splitlines() == [
        "url_files: cannot read 'nope.txt': No such file or directory",
        "url_files: cannot read 'lists': Is a directory",
        "local_videos: 'gone_folder' is neither a folder nor a video file (.mp4)",
        "local_videos: 'clip.mov' is neither a folder nor a video file (.mp4)",
    ]


def test_a_url_list_that_is_not_text_is_a_config_error(tmp_path):
    (tmp_path / "urls.txt").write_bytes("https://a.example/1.mp4\n".encode("utf-16"))
    with pytest.raises(ConfigError, match=r"url_files: cannot read 'urls.txt': not UTF-8 text \(invalid start byte"):
        collect_videos({"url_files": ["urls.txt"]}, root=str(tmp_path))
