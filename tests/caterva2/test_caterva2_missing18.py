"""Session 18: what a missing Caterva2 dataset, directory, root or chunk key reports, through
fsspec (info, ls, cat_file), zarr, xarray, dask and ``b2store info``, on a real server.

Contract: a missing path is a ``FileNotFoundError`` (zarr's own not-found type where zarr
decides) whose message names the ``caterva2://`` URL, never the REST URL nor credentials, and
says what exists or what to do.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import blosc2
import dask.array as da
import fsspec
import numpy as np
import pytest
import xarray as xr
import zarr
from _c2server import public_folder

from b2store.caterva2.chunks import Caterva2DataError
from b2store.caterva2.filesystem import Caterva2FileSystem
from b2store.cli import main
from b2store.inspect import inspect_path


@pytest.fixture
def folder(cat2_server: Any) -> tuple[Path, str, str]:
    """A folder with one 10x10 dataset ``a.b2nd`` (chunks 5x5): (folder, URL, store path)."""
    where, url = public_folder(cat2_server, "missing18")
    a = np.arange(100).reshape(10, 10)
    blosc2.asarray(a, chunks=(5, 5), blocks=(5, 5), urlpath=str(where / "a.b2nd"), mode="w")
    return where, url, f"@public/{where.name}"


def _fs(cat2_server: Any, so: dict[str, Any]) -> Caterva2FileSystem:
    return fsspec.filesystem("caterva2", host=cat2_server.host, **so)


@pytest.mark.parametrize("method", ["info", "ls", "cat_file"])
@pytest.mark.parametrize("name", ["missing.b2nd", "missing_dir"])
def test_fsspec_calls_on_a_missing_path_name_its_url(
    cat2_server: Any, so: dict[str, Any], folder: Any, method: str, name: str
) -> None:
    """Was "Caterva2 has no http://host/api/info/@public/... (HTTP 404): Not Found" (the REST
    URL, no advice); cat_file said "... is not a Zarr key"."""
    _, url, path = folder
    fs = _fs(cat2_server, so)
    with pytest.raises(FileNotFoundError) as info:
        getattr(fs, method)(f"{path}/{name}")
    text = str(info.value)
    assert text.startswith(f"{url}/{name}: no such dataset or directory was found on the ")
    assert f"`b2store info {url}`" in text and f"fs.ls({path!r})" in text
    assert "/api/" not in text


@pytest.mark.parametrize("method", ["info", "ls", "cat_file"])
@pytest.mark.parametrize("path", ["@nosuchroot", "@nosuchroot/x.b2nd", "@nosuchroot/zarr.json"])
def test_a_missing_root_names_the_roots(
    cat2_server: Any, so: dict[str, Any], method: str, path: str
) -> None:
    fs = _fs(cat2_server, so)
    with pytest.raises(FileNotFoundError) as info:
        getattr(fs, method)(path)
    text = str(info.value)
    node = path.removesuffix("/zarr.json")
    assert text.startswith(f"caterva2://{cat2_server.host}/{node}: the server has no root")
    assert "Its roots are @public:" in text and "need a login" in text


@pytest.mark.parametrize("key", ["c/9/9", "9.9", "c/0/2"])
def test_info_of_a_chunk_key_off_the_grid_says_so(
    cat2_server: Any, so: dict[str, Any], folder: Any, key: str
) -> None:
    """info and ls said "Caterva2 has no .../api/info/<dataset>/c/9" for a key cat_file
    reported as outside the chunk grid."""
    _, url, path = folder
    fs = _fs(cat2_server, so)
    for call in (fs.info, fs.ls, fs.cat_file):
        with pytest.raises(FileNotFoundError) as info:
            call(f"{path}/a.b2nd/{key}")
        text = str(info.value)
        assert text.startswith(f"{url}/a.b2nd/{key}: chunk ")
        assert "outside the chunk grid (2, 2)" in text
        assert "c/0/0 to c/1/1 (Zarr v3) or 0.0 to 1.1 (v2)" in text
    assert not fs.exists(f"{path}/a.b2nd/{key}")


def test_a_chunk_key_of_a_missing_dataset_is_a_missing_key(
    cat2_server: Any, so: dict[str, Any], folder: Any
) -> None:
    """fs.cat_file of a chunk key of a dataset that never existed raised Caterva2DataError (an
    OSError, not FileNotFoundError) "deleted, renamed ... since the array was opened; reopen
    it", from an instance that had opened nothing; info named ".../c/0" as the missing node."""
    _, url, path = folder
    fs = _fs(cat2_server, so)
    key = f"{path}/missing.b2nd/c/0/0"
    for call in (fs.cat_file, fs.info):
        with pytest.raises(FileNotFoundError) as info:
            call(key)
        text = str(info.value)
        assert not isinstance(info.value, Caterva2DataError)
        assert text.startswith(f"{url}/missing.b2nd/c/0/0: a chunk key of a dataset the server")
        assert f"{url}/missing.b2nd: no such dataset or directory" in text
        assert "opened" not in text


def test_a_chunk_key_below_a_directory_is_not_reported_as_a_missing_directory(
    cat2_server: Any, so: dict[str, Any], folder: Any
) -> None:
    """``<dir>/c/0`` reads as chunk 0 of ``<dir>``, which exists (a group, no chunks)."""
    _, url, path = folder
    fs = _fs(cat2_server, so)
    with pytest.raises(FileNotFoundError) as info:
        fs.cat_file(f"{path}/c/0")
    assert str(info.value).startswith(f"{url}/c/0: no such dataset or directory")


def test_a_dataset_deleted_after_an_open_still_refuses_its_chunks(
    cat2_server: Any, so: dict[str, Any], folder: Any
) -> None:
    """zarr reads chunk keys only of arrays it opened: a missing dataset then must not be a
    missing key (zarr would read fill values)."""
    where, _, path = folder
    fs = _fs(cat2_server, so)
    fs.cat_file(f"{path}/a.b2nd/.zarray")  # as zarr opens it
    (where / "a.b2nd").unlink()
    fs.invalidate_cache()
    with pytest.raises(Caterva2DataError) as info:
        fs.cat_file(f"{path}/a.b2nd/c/0/0")
    assert not isinstance(info.value, FileNotFoundError)


def test_cat_file_of_a_dataset_or_directory_says_it_is_no_key(
    cat2_server: Any, so: dict[str, Any], folder: Any
) -> None:
    """Was FileNotFoundError "... is not a Zarr key", as for a path that does not exist."""
    _, url, path = folder
    fs = _fs(cat2_server, so)
    for node, node_url in ((f"{path}/a.b2nd", f"{url}/a.b2nd"), (path, url)):
        with pytest.raises(IsADirectoryError, match="not a key") as info:
            fs.cat_file(node)
        assert str(info.value).startswith(f"{node_url} is a Zarr group or a dataset's view")
        assert f"{node_url}/zarr.json" in str(info.value)


@pytest.mark.parametrize(
    "opener",
    [
        lambda url, so: xr.open_zarr(url, storage_options=so),
        lambda url, so: zarr.open_group(url, mode="r", storage_options=so),
        lambda url, so: zarr.open_array(url, mode="r", storage_options=so),
        lambda url, so: da.from_zarr(url, storage_options=so),
    ],
    ids=["open_zarr", "open_group", "open_array", "from_zarr"],
)
@pytest.mark.parametrize("name", ["dir/missing.b2nd", "missing_dir", "a.b2nd/missing"])
def test_zarr_xarray_dask_raise_file_not_found(
    so: dict[str, Any], folder: Any, opener: Any, name: str
) -> None:
    """zarr decides these (it turns the store's FileNotFoundError into its own not-found
    error): a FileNotFoundError naming the path, never a server error or a crash."""
    _, url, path = folder
    with pytest.raises(FileNotFoundError) as info:
        opener(f"{url}/{name}", so)
    assert f"{path}/{name}" in str(info.value)


def test_zarr_on_a_missing_root_raises_file_not_found(cat2_server: Any, so: dict[str, Any]) -> None:
    url = f"caterva2://{cat2_server.host}/@nosuchroot"
    with pytest.raises(FileNotFoundError, match="@nosuchroot"):
        xr.open_zarr(url, storage_options=so)
    with pytest.raises(FileNotFoundError, match="@nosuchroot"):
        zarr.open_array(url, mode="r", storage_options=so)


def _info(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["info", url])
    out = capsys.readouterr()
    return rc, out.out + out.err


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2STORE_CACHE", str(tmp_path / "b2cache"))


@pytest.mark.parametrize("name", ["missing.b2nd", "missing_dir", "sub/deeper/missing.h5"])
def test_cli_info_of_a_missing_path_names_it_and_what_exists(
    folder: Any, capsys: pytest.CaptureFixture[str], own_cache: None, name: str
) -> None:
    """Was "Error: cannot open caterva2://... as a Zarr group: No group found in store
    'caterva2://...' at path ''"."""
    _, url, _ = folder
    rc, text = _info(f"{url}/{name}", capsys)
    assert rc == 1
    assert text.startswith(
        f"Error: {url}/{name}: no such dataset or directory was found on the Caterva2 server; "
        f"{url} holds a.b2nd"
    ), text
    assert "No group found" not in text and len(text.strip().splitlines()) == 1


def test_cli_info_of_a_missing_path_below_a_dataset(
    folder: Any, capsys: pytest.CaptureFixture[str], own_cache: None
) -> None:
    _, url, _ = folder
    rc, text = _info(f"{url}/a.b2nd/missing", capsys)
    assert rc == 1
    assert f"{url}/a.b2nd/missing: no such dataset or directory" in text
    assert f"{url}/a.b2nd is a dataset: open that URL instead" in text


def test_cli_info_of_a_missing_root(
    cat2_server: Any, capsys: pytest.CaptureFixture[str], own_cache: None
) -> None:
    url = f"caterva2://{cat2_server.host}/@nosuchroot/x.b2nd"
    rc, text = _info(url, capsys)
    assert rc == 1
    assert text.startswith(f"Error: {url}: the server has no root '@nosuchroot'. Its roots are")


def test_cli_info_of_a_chunk_key(
    folder: Any, capsys: pytest.CaptureFixture[str], own_cache: None
) -> None:
    _, url, _ = folder
    rc, text = _info(f"{url}/a.b2nd/c/0/0", capsys)
    assert rc == 1
    assert "is a key of a Zarr store (a metadata document or a chunk)" in text
    assert "No group found" not in text


def test_cli_info_with_credentials_hides_them(
    cat2_server: Any, folder: Any, capsys: pytest.CaptureFixture[str], own_cache: None
) -> None:
    """Was "Error: Caterva2URLNotFoundError: ... (set B2STORE_DEBUG=1 for a traceback)"."""
    _, url, _ = folder
    secret_url = url.replace("caterva2://", "caterva2://someone:SECRETPW@")
    rc, text = _info(f"{secret_url}/missing.b2nd", capsys)
    assert rc == 1
    assert "SECRETPW" not in text and "Caterva2URLNotFoundError" not in text
    assert f"Error: {url}/missing.b2nd: no such dataset or directory was found" in text


def test_inspect_raises_file_not_found(folder: Any, own_cache: None) -> None:
    _, url, _ = folder
    with pytest.raises(FileNotFoundError) as info:
        inspect_path(f"{url}/missing.b2nd")
    assert str(info.value).startswith(f"{url}/missing.b2nd: no such dataset or directory")
    assert "No group found" not in "".join(traceback.format_exception(info.value))
