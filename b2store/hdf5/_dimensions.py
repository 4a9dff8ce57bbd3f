"""netCDF dimensions across a group: equal dimension names must mean equal sizes.

Contract: :func:`reconcile_dimensions` rewrites the ``dimension_names`` of the array nodes of a
finished walk in place, so that within each group one name has one size (xarray refuses the
whole group otherwise); every renamed axis gets a note. Shapes, data and chunk tables are never
changed, only names.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace

from b2store._zarrmeta import ArrayMeta, Node
from b2store.hdf5 import metadata as md

__all__ = ["reconcile_dimensions"]


def reconcile_dimensions(
    nodes: dict[str, Node], dimension_lengths: dict[str, int], notes: list[str]
) -> None:
    """Make equal dimension names mean equal sizes within each group (xarray refuses the whole
    group otherwise). HDF5 does not enforce it: a dimension scale may be shorter than a dataset
    attached to it, or a dataset may use a scale of another group whose name a local scale of
    another length also has. The size of a name is that of the group's 1-D array of the same
    name, else of the group's own netCDF dimension of that name (``dimension_lengths``), else its
    most common size; an axis of another size gets a phony name (with a note).
    """
    by_group: dict[str, list[str]] = {}
    for path, node in nodes.items():
        if isinstance(node, ArrayMeta) and node.dimension_names:
            by_group.setdefault(posixpath.dirname(path), []).append(path)
    for group, paths in by_group.items():
        sizes: dict[str, dict[int, int]] = {}
        for p in paths:
            meta = nodes[p]
            assert isinstance(meta, ArrayMeta) and meta.dimension_names is not None
            for name, n in zip(meta.dimension_names, meta.shape, strict=True):
                counts = sizes.setdefault(name, {})
                counts[n] = counts.get(n, 0) + 1
        for name, counts in sizes.items():
            if len(counts) < 2:
                continue
            own = nodes.get(posixpath.join(group, name))
            if (
                isinstance(own, ArrayMeta)
                and own.dimension_names
                and own.dimension_names[0] == name
            ):  # a coordinate variable (1-D, or netCDF's multi-dimensional ``station(station, n)``)
                size = own.shape[0]
            elif posixpath.join(group, name) in dimension_lengths:
                size = dimension_lengths[posixpath.join(group, name)]
            else:
                size = max(counts, key=lambda n: (counts[n], -n))
            for p in paths:
                meta = nodes[p]
                assert isinstance(meta, ArrayMeta) and meta.dimension_names is not None
                dims = list(meta.dimension_names)
                for axis, n in enumerate(meta.shape):
                    if dims[axis] == name and n != size:
                        others = dims[:axis] + dims[axis + 1 :]
                        dims[axis] = md.extend_dimension_names(tuple(others), (n,))[-1]
                        notes.append(
                            f"/{p}: dimension {name!r} has length {n} here but {size} elsewhere "
                            f"in its group; axis {axis} is served as {dims[axis]!r}"
                        )
                nodes[p] = replace(meta, dimension_names=tuple(dims))
