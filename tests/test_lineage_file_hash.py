"""``files.hash_file`` is xxh3_128 of the file's bytes whatever its size and holes: its
buffers are sized by the file (a small file no longer pays for two 4 MiB zeroed buffers),
and a sparse file's holes are hashed as the zeros they read as."""

from __future__ import annotations

from pathlib import Path

import pytest
import xxhash

from nbgov.lineage import files

CHUNK = files._CHUNK


@pytest.mark.parametrize("size", [0, 1, 100, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 7])
def test_the_hash_is_xxh3_of_the_bytes(tmp_path: Path, size: int) -> None:
    path = tmp_path / "data.bin"
    data = bytes(i * 31 % 251 for i in range(min(size, 1000))) * (size // 1000 + 1)
    path.write_bytes(data[:size])
    assert files.hash_file(str(path)) == xxhash.xxh3_128_hexdigest(data[:size])


@pytest.mark.parametrize("layout", ["hole first", "hole between", "hole last", "all hole"])
def test_a_sparse_file_hashes_as_its_zeros_read(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "sparse.bin"
    size = 3 * CHUNK + 5
    with open(path, "wb") as handle:
        handle.truncate(size)
        if layout in ("hole first", "hole between"):
            handle.seek(size - 10)
            handle.write(b"end-bytes!")
        if layout in ("hole last", "hole between"):
            handle.seek(0)
            handle.write(b"start")
    assert files.hash_file(str(path)) == xxhash.xxh3_128_hexdigest(path.read_bytes())
    _, head = files._hash_and_head(str(path))
    assert head == path.read_bytes()[:len(head)] and len(head) == files.HEAD_BYTES
