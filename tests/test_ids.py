import pytest

from video_miner.fsutil import safe_name
from video_miner.ids import InvalidURL, normalize_url, video_id_for_path, video_id_for_url, youtube_id

YT = "dQw4w9WgXcQ"


@pytest.mark.parametrize(
    "url",
    [
        f"https://www.youtube.com/watch?v={YT}",
        f"http://youtube.com/watch?v={YT}&t=42s&list=PL123&index=3",
        f"https://m.youtube.com/watch?feature=share&v={YT}",
        f"https://music.youtube.com/watch?v={YT}&si=abc",
        f"https://youtu.be/{YT}",
        f"https://youtu.be/{YT}?si=Xyz123&t=10",
        f"https://www.youtube.com/shorts/{YT}",
        f"https://youtube.com/shorts/{YT}?feature=share",
        f"https://www.youtube.com/embed/{YT}?start=5",
        f"https://www.youtube-nocookie.com/embed/{YT}",
        f"https://www.youtube.com/live/{YT}?si=q",
        f"https://www.youtube.com/v/{YT}",
        f"  https://WWW.YOUTUBE.COM/watch?v={YT}  ",
    ],
)
def test_every_youtube_form_gives_the_video_id(url):
    assert youtube_id(url) == YT
    assert video_id_for_url(url) == YT


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/playlist?list=PL123",
        "https://www.youtube.com/@somechannel",
        "https://www.youtube.com/watch?v=tooshort",
        "https://example.com/watch?v=dQw4w9WgXcQ",
        "https://youtu.be/",
    ],
)
def test_non_video_youtube_and_lookalike_urls_are_not_youtube_ids(url):
    assert youtube_id(url) is None


def test_other_urls_hash_their_normalised_form():
    a = video_id_for_url("HTTPS://Example.COM:443/clips/a.mp4#t=3")
    assert a == video_id_for_url("https://example.com/clips/a.mp4")
    assert a.startswith("url-") and len(a) == 20
    assert a != video_id_for_url("https://example.com/clips/b.mp4")
    assert video_id_for_url("https://example.com/a.mp4?x=1") != video_id_for_url("https://example.com/a.mp4?x=2")


def test_ids_are_stable_across_runs():
    # A changed hash would orphan every result of an existing run.
    assert video_id_for_url("https://example.com/clips/a.mp4") == "url-ce24636e786ffd9f"


def test_normalize_keeps_non_default_port_and_query():
    assert normalize_url("http://Host:8080?a=1") == "http://host:8080/?a=1"


@pytest.mark.parametrize(
    "url,message",
    [
        ("ftp://example.com/a.mp4", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("/local/video.mp4", "only http and https"),
        ("http://", "no host"),
        ("https://user:secret@example.com/a.mp4", "credentials"),
    ],
)
def test_invalid_urls_are_refused_with_a_reason(url, message):
    with pytest.raises(InvalidURL, match=message):
        video_id_for_url(url)


def test_path_ids_are_relative_to_the_working_directory(tmp_path):
    inside = video_id_for_path("videos/a.mp4", root=tmp_path)
    assert inside == video_id_for_path(tmp_path / "videos" / "a.mp4", root=tmp_path)
    assert inside == video_id_for_path("videos/../videos/./a.mp4", root=tmp_path)
    assert inside.startswith("file-")
    assert inside != video_id_for_path("videos/b.mp4", root=tmp_path)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/path", "a\x00b", "-rf", "..", "", "x" * 500, "é/ü"])
def test_safe_name_never_escapes_or_hides(name):
    cleaned = safe_name(name)
    assert cleaned and "/" not in cleaned and "\x00" not in cleaned and ".." not in cleaned
    assert not cleaned.startswith((".", "-")) and len(cleaned) <= 100
