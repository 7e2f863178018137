"""Packed frames: the tar writer (index, size limit, atomicity) and the one reader."""

import io
import tarfile

import pytest
from PIL import Image

from video_miner import framestore
from video_miner.framestore import TarPacker, address, copy_to, exists, is_packed, open_image, read_bytes
from video_miner.models import load_image


def _jpeg(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_members_are_indexed_read_back_with_one_seek_and_split_by_size(tmp_path):
    frames = {f"v{k % 2}/{k:08d}.jpg": _jpeg((k * 20, 0, 0)) for k in range(6)}
    with TarPacker(tmp_path, max_bytes=2 * 1024) as packer:
        addresses = {m: packer.add(m, data) for m, data in frames.items()}
    tars = framestore.tar_files(tmp_path)
    assert len(tars) > 1 and packer.tars == tars  # split above the size, in order
    for member, data in frames.items():
        path = addresses[member]
        assert is_packed(path) and path.endswith("#" + member) and exists(path)
        assert read_bytes(path) == data
    # Standard tar readers (and so WebDataset) see the same members and bytes.
    seen = {}
    for tar in tars:
        with tarfile.open(tar) as archive:
            seen.update({m.name: archive.extractfile(m).read() for m in archive})
    assert seen == frames
    with open_image(addresses["v0/00000000.jpg"]) as image:
        assert image.size == (32, 24)
    copy_to(addresses["v1/00000001.jpg"], tmp_path / "out" / "a.jpg")
    assert (tmp_path / "out" / "a.jpg").read_bytes() == frames["v1/00000001.jpg"]


def test_a_tar_without_its_index_is_scanned(tmp_path):
    with TarPacker(tmp_path, max_bytes=1 << 20) as packer:
        path = packer.add("v/00000000.jpg", b"abc")
    (tmp_path / "000000.tar.index.json").unlink()
    framestore._cached_index.cache_clear()
    assert read_bytes(path) == b"abc"


def test_a_failed_writer_leaves_no_tar(tmp_path):
    with pytest.raises(RuntimeError):
        with TarPacker(tmp_path, max_bytes=1 << 20) as packer:
            packer.add("v/00000000.jpg", b"abc")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_missing_truncated_and_corrupt_members_say_why(tmp_path, caplog):
    with TarPacker(tmp_path, max_bytes=1 << 20) as packer:
        good = packer.add("v/00000000.jpg", _jpeg((0, 255, 0)))
        bad = packer.add("v/00000001.jpg", b"not an image")
    missing = address(tmp_path / "000000.tar", "v/00000002.jpg")
    with pytest.raises(FileNotFoundError, match="no member"):
        read_bytes(missing)
    assert not exists(missing) and not exists(address(tmp_path / "gone.tar", "v/0.jpg"))
    assert load_image(good) is not None
    assert load_image(bad) is None and load_image(missing) is None  # the stage records it unreadable
    assert "no member" in caplog.text
    tar = tmp_path / "000000.tar"
    tar.write_bytes(tar.read_bytes()[:600])  # cut inside the first member's data
    with pytest.raises(OSError, match="truncated"):
        read_bytes(good)
    assert load_image(good) is None


def test_loose_paths_pass_through(tmp_path):
    path = tmp_path / "a#b.jpg"  # a '#' in a loose name is not an address
    path.write_bytes(_jpeg((1, 2, 3)))
    assert not is_packed(str(path)) and exists(str(path)) and read_bytes(str(path)) == path.read_bytes()
