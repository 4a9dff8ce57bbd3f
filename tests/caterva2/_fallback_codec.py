"""Test-only stand-in for the ``b2store.b2nd`` Zarr v3 codec while b2store.codecs.zarr3 is absent.

It decodes bare Blosc2 chunks in b2nd block order (the contract of the real codec) so the Caterva2
filesystem can be tested on its own. :func:`install` registers it only when the real codec cannot
be imported.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import blosc2
import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration


@dataclass(frozen=True)
class FallbackB2ndCodec(ArrayBytesCodec):  # type: ignore[misc]
    is_fixed_size = False
    blocks: tuple[int, ...] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FallbackB2ndCodec:
        _, cfg = parse_named_configuration(data, "b2store.b2nd", require_configuration=False)
        blocks = (cfg or {}).get("blocks")
        return cls(blocks=tuple(blocks) if blocks is not None else None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": "b2store.b2nd", "configuration": {"blocks": list(self.blocks or ())}}

    def _decode_sync(self, chunk_bytes: Any, spec: Any) -> Any:
        raw = chunk_bytes.to_bytes()
        dtype = spec.dtype.to_native_dtype()
        chunks = tuple(spec.shape)
        blocks = self.blocks or chunks
        flat = blosc2.decompress2(raw)
        nd = len(chunks)
        if nd == 0:
            arr = np.frombuffer(flat, dtype=dtype)[:1].reshape(())
        else:
            grid = [math.ceil(c / b) for c, b in zip(chunks, blocks, strict=False)]
            a = np.frombuffer(flat, dtype=dtype).reshape(*grid, *blocks)
            a = a.transpose([x for i in range(nd) for x in (i, nd + i)])
            a = a.reshape([g * b for g, b in zip(grid, blocks, strict=False)])
            arr = a[tuple(slice(0, c) for c in chunks)]
        return spec.prototype.nd_buffer.from_numpy_array(np.ascontiguousarray(arr))

    async def _decode_single(self, chunk_bytes: Any, spec: Any) -> Any:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, spec)

    async def _encode_single(self, chunk_array: Any, spec: Any) -> Any:
        raise NotImplementedError("test stand-in: decode only")

    def compute_encoded_size(self, input_byte_length: int, spec: Any) -> int:
        raise NotImplementedError


def real_codec_available() -> bool:
    try:
        import b2store.codecs.zarr3  # noqa: F401
    except ImportError:
        return False
    return True


def install() -> bool:
    """Register the stand-in unless the real codec imports; True when the stand-in is in use."""
    if real_codec_available():
        return False
    import zarr.registry

    zarr.registry._collect_entrypoints()
    registries = getattr(zarr.registry, "__codec_registries")
    if "b2store.b2nd" in registries:
        registries["b2store.b2nd"].lazy_load_list.clear()  # the entry point cannot import yet
    zarr.registry.register_codec("b2store.b2nd", FallbackB2ndCodec)
    return True
