import stat

from video_miner import fsutil
from video_miner.fsutil import atomic_dir, write_text_atomic


def test_atomic_writes_get_the_umask_permissions_not_private_ones(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "x")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "f").write_text("y")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~fsutil._UMASK
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~fsutil._UMASK
    assert (tmp_path / "d" / "f").read_text() == "y"
