import stat

import pandas as pd

from video_miner import fsutil
from video_miner.fsutil import atomic_dir, printable, write_text_atomic, write_tsv


def test_atomic_writes_get_the_umask_permissions_not_private_ones(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "x")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "f").write_text("y")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~fsutil._UMASK
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~fsutil._UMASK
    assert (tmp_path / "d" / "f").read_text() == "y"


def test_control_characters_are_escaped_and_the_rest_kept():
    hostile = "a\tb\nc\rd\x1b[31mred\x07\x9b2J\u2028\udcff"
    assert printable(hostile) == "a\\tb\\nc\\rd\\x1b[31mred\\x07\\x9b2J\\u2028\\udcff"
    assert printable("Café 日本 C:\\clips \"q\" 🎬") == "Café 日本 C:\\clips \"q\" 🎬"
    assert printable(printable(hostile)) == printable(hostile)  # rewriting a written file changes nothing


def test_tsv_rows_stay_one_line_and_integers_stay_integers(tmp_path):
    table = pd.DataFrame({"name": ["two\nlines", "tab\there", None], "width": [320.0, None, 1080.0],
                          "frames": pd.Series([12, pd.NA, 0], dtype=object), "fps": [29.97, None, 30.0]})
    write_tsv(tmp_path / "t.tsv", table, integers=["width", "frames"])
    assert (tmp_path / "t.tsv").read_text().splitlines() == [
        "name\twidth\tframes\tfps",
        "two\\nlines\t320\t12\t29.97",
        "tab\\there\t\t\t",
        "\t1080\t0\t30.0",
    ]


def test_link_or_copy_links_and_copies_where_links_cannot_be_made(tmp_path, monkeypatch):
    source = tmp_path / "frame.jpg"
    source.write_bytes(b"pixels")
    assert fsutil.link_or_copy(source, tmp_path / "a" / "b" / "linked.jpg")
    assert (tmp_path / "a" / "b" / "linked.jpg").stat().st_ino == source.stat().st_ino

    def cross_device(*args):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(fsutil.os, "link", cross_device)
    assert not fsutil.link_or_copy(source, tmp_path / "c" / "copied.jpg")
    copied = tmp_path / "c" / "copied.jpg"
    assert copied.read_bytes() == b"pixels" and copied.stat().st_ino != source.stat().st_ino
