"""Damaged HDF5 files for tests: bytes of a file's metadata overwritten, as a bad disk or an
interrupted copy leaves them (HDF5 then reports a bad B-tree or object-header signature)."""

from __future__ import annotations

import struct
from pathlib import Path

import h5py
import numpy as np


def damaged_group_file(path: Path) -> Path:
    """Groups g0 (intact) and g1 (the signature of its B-tree of links overwritten), three
    chunked datasets each."""
    with h5py.File(path, "w", libver="earliest") as f:
        for g in range(2):
            for d in range(3):
                f.create_dataset(f"g{g}/d{d}", data=np.arange(100) + d, chunks=(10,))
        header = h5py.h5o.get_info(f["g1"].id).addr
    with open(path, "r+b") as fh:
        fh.seek(_btree_address(fh, header))
        assert fh.read(4) == b"TREE"
        fh.seek(-4, 1)
        fh.write(b"\0\0\0\0")
    return path


def damaged_header_file(path: Path) -> Path:
    """Datasets ``a`` (intact) and ``b`` (the version byte of its object header overwritten)."""
    with h5py.File(path, "w", libver="earliest") as f:
        f.create_dataset("a", data=np.arange(10))
        f.create_dataset("b", data=np.arange(10) * 2)
        addr = h5py.h5o.get_info(f["b"].id).addr
    with open(path, "r+b") as fh:
        fh.seek(addr)
        fh.write(b"\x09\x09\x09\x09")
    return path


def _btree_address(fh, header: int) -> int:  # type: ignore[no-untyped-def]
    """The B-tree address in the symbol-table message (type 0x11) of the version-1 object
    header at ``header``."""
    fh.seek(header)
    version, _, nmsgs, _, _size = struct.unpack("<BBHII", fh.read(12))
    assert version == 1
    pos = header + 16  # the 12-byte prefix, padded to 8 bytes
    for _ in range(nmsgs):
        fh.seek(pos)
        mtype, msize = struct.unpack("<HH", fh.read(4))
        if mtype == 0x11:
            fh.seek(pos + 8)
            return int(struct.unpack("<Q", fh.read(8))[0])
        pos += 8 + msize
    raise ValueError("no symbol-table message")
