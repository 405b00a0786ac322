"""Where data lives: local paths and object-store URIs through one filesystem layer.

A ``Location`` is a place that may hold files: a local path, or a URI of an object store
(``s3://bucket/key``, ``s3a://``, ``gs://``/``gcs://``, ``abfs://``/``abfss://``/``az://``).
``Location.parse`` takes either and never mangles a URI (``Path("s3://b/x")`` is ``s3:/b/x``);
``file://`` URIs are local paths. A ``Location`` joins, lists, reads, writes, copies and deletes
through an fsspec filesystem (s3fs for S3; gcsfs/adlfs when installed for the others; the local
file system for paths), hands pyarrow a ``pyarrow.fs`` filesystem for Parquet writes, and registers
a filesystem with a DuckDB connection so that ``read_parquet``/``read_csv`` read the bucket.

Credentials and endpoints come only from the standard mechanisms of each store's own client, never
from puffy's params files: for S3, botocore's chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` with ``~/.aws/credentials`` and ``~/.aws/config`` (SSO,
assumed roles), container and instance roles) and its endpoint variables (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_S3``) for S3-compatible stores (MinIO, Ceph, a test server).

Which client does what was chosen by measurement (docs/spark.md, "Object storage"): s3fs for
listing, small objects and Parquet writes (pyarrow writing through s3fs was 1.8x faster than
pyarrow's own S3 client on a 16 MB file; small objects cost the same), and pyarrow's own S3 client
for DuckDB's reads (DuckDB reading Parquet and CSV through it was 2.5-7x faster than through s3fs,
whose read-ahead block fetches more than DuckDB's ranged reads need). Both take their credentials
from the same standard chain.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from puffy.errors import UserError

#: URI scheme -> fsspec protocol, for the object stores a Location accepts.
REMOTE_SCHEMES = {
    "s3": "s3",
    "s3a": "s3",  # s3a:// is Hadoop's (Spark's) name for the same buckets
    "gs": "gcs",
    "gcs": "gcs",
    "abfs": "abfs",
    "abfss": "abfs",
    "az": "abfs",
}
#: The package that provides each protocol's fsspec filesystem (for the message when it is missing).
_FSSPEC_PACKAGE = {"s3": "s3fs", "gcs": "gcsfs", "abfs": "adlfs"}
#: Environment variables that choose the S3 account or endpoint: a change makes a new client.
_S3_ENVIRONMENT = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?")


def _names_refusals(method):
    """The store refusing a request (s3fs raises ``PermissionError`` with neither an errno nor the
    object's name) re-raised naming this location, so the one-line error says which object."""

    @functools.wraps(method)
    def wrapper(self: Location, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except PermissionError as exc:
            if exc.errno is not None or "://" in str(exc):
                raise
            raise PermissionError(f"{self.uri}: {exc}") from exc

    return wrapper


@dataclass(frozen=True)
class Location:
    """A local directory or file (``scheme == "file"``, ``path`` absolute) or an object-store prefix
    or object (``scheme`` as written, ``bucket``, ``key`` without leading or trailing slash)."""

    scheme: str
    bucket: str  # the bucket / container (with ``@account…`` for abfs); "" for local
    key: str  # for local: the absolute path

    # --- parsing ------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, value: str | os.PathLike | Location) -> Location:
        """A Location from a local path, a ``file://`` URI or an object-store URI.

        Raises ``UserError`` for an unsupported scheme, a URI without a bucket, and for ``s3:/b/x``
        (an object-store URI that lost a slash, as ``pathlib.Path`` does to one).
        """
        if isinstance(value, Location):
            return value
        if isinstance(value, os.PathLike):
            return cls("file", "", str(Path(value).expanduser().absolute()))
        text = str(value).strip()
        if not text:
            raise UserError("an empty path was given where a directory or URI is expected")
        match = _SCHEME.match(text)
        if match is None or len(match.group(1)) == 1:  # no scheme, or a Windows drive letter
            return cls("file", "", str(Path(text).expanduser().absolute()))
        scheme = match.group(1).lower()
        if scheme == "file":
            return cls._parse_file_uri(text)
        if scheme not in REMOTE_SCHEMES:
            raise UserError(
                f"{text}: unsupported URI scheme {scheme!r}; use a local path or one of "
                f"{', '.join(sorted({*REMOTE_SCHEMES, 'file'}))}"
            )
        if match.group(2) is None:
            raise UserError(
                f"{text}: an object-store URI needs '{scheme}://' (two slashes) and a bucket, "
                f"e.g. {scheme}://my-bucket/warehouse; was it passed through a path that "
                f"collapsed the double slash?"
            )
        parts = urlsplit(text)
        if not parts.netloc:
            raise UserError(f"{text}: missing bucket name (expected {scheme}://<bucket>/<prefix>)")
        key = "/".join(p for p in parts.path.split("/") if p)
        if parts.query or parts.fragment:
            raise UserError(f"{text}: a storage URI takes no '?query' or '#fragment'")
        return cls(scheme, parts.netloc, key)

    @classmethod
    def _parse_file_uri(cls, text: str) -> Location:
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise UserError(
                f"{text}: a file:// URI names a file on this machine (file:///path); "
                f"host {parts.netloc!r} is not supported"
            )
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise UserError(f"{text}: a file:// URI needs an absolute path (file:///path/to/dir)")
        return cls("file", "", str(Path(path)))

    # --- naming -------------------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    @property
    def protocol(self) -> str:
        """fsspec's protocol: ``file``, ``s3``, ``gcs`` or ``abfs``."""
        return "file" if self.is_local else REMOTE_SCHEMES[self.scheme]

    @property
    def uri(self) -> str:
        """The location as its user wrote it (a local path stays a plain path)."""
        if self.is_local:
            return self.key
        return f"{self.scheme}://{self.bucket}/{self.key}" if self.key else f"{self.scheme}://{self.bucket}"

    def __str__(self) -> str:
        return self.uri

    def __fspath__(self) -> str:
        if not self.is_local:
            raise TypeError(f"{self.uri} is in object storage, not a local path")
        return self.key

    @property
    def path(self) -> Path:
        """The local path (``TypeError`` for an object-store location)."""
        return Path(self.__fspath__())

    @property
    def fs_path(self) -> str:
        """The location in its fsspec filesystem's terms (``bucket/key``; the path for local)."""
        if self.is_local:
            return self.key
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    @property
    def name(self) -> str:
        return posixpath.basename(self.key) if not self.is_local else self.path.name

    @property
    def parent(self) -> Location:
        if self.is_local:
            return Location("file", "", str(self.path.parent))
        return Location(self.scheme, self.bucket, posixpath.dirname(self.key))

    def join(self, *parts: str) -> Location:
        """A location under this one; each part may hold ``/`` (not ``..``, not absolute)."""
        segments = [s for part in parts for s in str(part).split("/") if s]
        if any(s in (".", "..") for s in segments):
            raise ValueError(f"{parts}: a relative part may not contain '.' or '..'")
        if self.is_local:
            return Location("file", "", str(self.path.joinpath(*segments)))
        return Location(self.scheme, self.bucket, "/".join([*([self.key] if self.key else []), *segments]))

    def __truediv__(self, part: str) -> Location:
        return self.join(part)

    def relative_to(self, base: Location) -> str:
        """This location's path below ``base`` (``/``-separated)."""
        if (self.scheme, self.bucket) != (base.scheme, base.bucket) and not (self.is_local and base.is_local):
            raise ValueError(f"{self} is not under {base}")
        if self.is_local:
            return self.path.relative_to(base.path).as_posix()
        if base.key and not (self.key == base.key or self.key.startswith(base.key + "/")):
            raise ValueError(f"{self} is not under {base}")
        return self.key[len(base.key) :].lstrip("/")

    def _child(self, fs_path: str) -> Location:
        """The Location of a path that ``self.fs`` returned."""
        if self.is_local:
            return Location("file", "", fs_path)
        bucket, _, key = fs_path.strip("/").partition("/")
        return Location(self.scheme, bucket, key)

    # --- the filesystems ----------------------------------------------------------------------------

    @property
    def fs(self):
        """The fsspec filesystem of this location (s3fs for S3)."""
        return fsspec_filesystem(self.protocol)

    def arrow_filesystem(self):
        """``(pyarrow.fs.FileSystem, path)`` for pyarrow (Parquet writes): the local file system, or
        this location's fsspec filesystem seen through ``pyarrow.fs.PyFileSystem`` (see module doc).
        For a local location its parent directory is created."""
        import pyarrow.fs as pafs

        if self.is_local:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # as in a bucket, a file needs no folder made first
            return pafs.LocalFileSystem(), self.key
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs)), self.fs_path

    @property
    def duckdb_uri(self) -> str:
        """The string DuckDB reads this location by once ``register_duckdb`` ran on the connection."""
        return self.uri  # the registered filesystems answer to every scheme of their store (s3 and s3a)

    # --- operations ---------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.fs.exists(self.fs_path)

    def is_dir(self) -> bool:
        """A local directory, or an object-store prefix holding at least one object."""
        if self.is_local:
            return self.path.is_dir()
        return self.fs.isdir(self.fs_path)

    def is_file(self) -> bool:
        return self.fs.isfile(self.fs_path)

    @_names_refusals
    def list(self) -> list[Location]:
        """The direct children (files and sub-directories / common prefixes), sorted; [] when missing."""
        try:
            names = self.fs.ls(self.fs_path, detail=False)
        except FileNotFoundError:
            return []
        own = self.fs_path.rstrip("/")
        return sorted((self._child(n) for n in names if n.rstrip("/") != own), key=lambda loc: loc.uri)

    @_names_refusals
    def files(self) -> list[Location]:
        """Every file below this location (recursive), sorted."""
        try:
            found = self.fs.find(self.fs_path)
        except FileNotFoundError:
            return []
        return sorted((self._child(n) for n in found), key=lambda loc: loc.uri)

    @_names_refusals
    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self.fs_path)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    @_names_refusals
    def write_bytes(self, data: bytes, **put_options) -> None:
        """Write the whole object/file in one piece. On object storage one PUT: readers see the old
        object or the new one, never part of it. ``put_options`` go to the store's PUT (S3: ``IfMatch``,
        ``IfNoneMatch``, ...)."""
        if self.is_local:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(data)
            return
        self.fs.pipe_file(self.fs_path, data, **put_options)

    def write_text(self, text: str, encoding: str = "utf-8", **put_options) -> None:
        self.write_bytes(text.encode(encoding), **put_options)

    @_names_refusals
    def open(self, mode: str = "rb") -> IO:
        if self.is_local and any(m in mode for m in "wa"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        return self.fs.open(self.fs_path, mode)

    @_names_refusals
    def upload(self, local_file: str | os.PathLike) -> None:
        """Copy a local file here (one PUT for small files, multipart for large ones)."""
        if self.is_local:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fs.put_file(os.fspath(local_file), self.fs_path)

    @_names_refusals
    def download(self, local_file: str | os.PathLike) -> None:
        """Copy this file to the local path ``local_file`` (streamed; its folder is created)."""
        Path(local_file).parent.mkdir(parents=True, exist_ok=True)
        self.fs.get_file(self.fs_path, os.fspath(local_file))

    @_names_refusals
    def copy_to(self, target: Location) -> None:
        """Copy this file to ``target``: server-side within one store, else through this machine."""
        if self.protocol == target.protocol and not self.is_local:
            self.fs.copy(self.fs_path, target.fs_path)
        elif self.is_local:
            target.upload(self.key)
        else:
            target.write_bytes(self.read_bytes())

    @_names_refusals
    def delete(self, recursive: bool = False) -> None:
        """Remove the file, or everything under the prefix/directory with ``recursive``; nothing if missing."""
        if self.is_local:
            import shutil

            if self.path.is_dir():
                if recursive:
                    shutil.rmtree(self.path, ignore_errors=True)
                else:
                    self.path.rmdir()
            else:
                self.path.unlink(missing_ok=True)
            return
        try:
            self.fs.rm(self.fs_path, recursive=recursive)
        except FileNotFoundError:
            pass

    @_names_refusals
    def etag(self) -> str | None:
        """The object's entity tag (object storage; None for local files or a missing object)."""
        if self.is_local:
            return None
        try:
            info = self.fs.info(self.fs_path)
        except FileNotFoundError:
            return None
        return info.get("ETag")


def why_empty(loc: str | os.PathLike | Location) -> str:
    """Why an object-store prefix found empty holds nothing, for an error message: its bucket does not
    exist (or the credentials in use cannot see it), or the bucket has nothing under the prefix.
    One request (whether the bucket exists); call it only once the prefix was found empty."""
    loc = Location.parse(loc)
    bucket = Location(loc.scheme, loc.bucket, "")
    if not bucket.exists():
        return (
            f"bucket {loc.bucket!r} does not exist, or the credentials in use cannot see it (check the name, "
            f"and AWS_PROFILE / AWS_ENDPOINT_URL for the account and endpoint)"
        )
    return f"bucket {loc.bucket!r} has nothing under {loc.key + '/' if loc.key else 'its root'}"


def localize(loc: str | os.PathLike | Location, cache_dir: str | os.PathLike) -> Path:
    """A local path holding ``loc``'s file: the path itself when local, else a copy downloaded into
    ``cache_dir`` (``<bucket>/<key>``), fetched again only when the object's ETag or size changed.

    For readers that read a file several times or need a seekable local file (the raw-CSV ingest
    counts lines, indexes them and parses them: one download instead of three remote reads).
    The download goes to a temporary name and is renamed, so a killed download is never mistaken
    for the file.
    """
    loc = Location.parse(loc)
    if loc.is_local:
        return loc.path
    info = loc.fs.info(loc.fs_path)
    stamp = f"{info.get('ETag', '')}:{info.get('size', '')}"
    target = Path(cache_dir) / loc.bucket / loc.key
    marker = target.with_name(f".{target.name}.etag")
    if target.exists() and marker.exists() and marker.read_text(encoding="utf-8") == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part-{os.getpid()}")
    try:
        loc.fs.get_file(loc.fs_path, str(partial))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    marker.write_text(stamp, encoding="utf-8")
    return target


def location(value: str | os.PathLike | Location) -> Location:
    """``Location.parse``, for brevity at call sites."""
    return Location.parse(value)


def is_remote(value: str | os.PathLike | Location) -> bool:
    """Whether ``value`` names object storage (not a local path or ``file://`` URI)."""
    return not Location.parse(value).is_local


def _environment_key(protocol: str) -> tuple:
    return tuple(os.environ.get(k) for k in _S3_ENVIRONMENT) if protocol == "s3" else ()


def fsspec_filesystem(protocol: str):
    """The fsspec filesystem for ``protocol``, configured only from the standard environment; one
    client per process and per set of AWS variables (a changed endpoint or profile makes a new one)."""
    return _fsspec_filesystem(protocol, _environment_key(protocol))


@functools.lru_cache(maxsize=16)
def _fsspec_filesystem(protocol: str, _environment: tuple):
    import fsspec

    if protocol == "file":
        return fsspec.filesystem("file")
    try:
        # No listing cache: another process (a concurrent publish, a reader) may have changed the
        # bucket since; each listing asks the store, which is strongly consistent.
        return fsspec.filesystem(protocol, skip_instance_cache=True, use_listings_cache=False)
    except ImportError as exc:
        raise UserError(
            f"reading or writing {protocol}:// needs the package {_FSSPEC_PACKAGE[protocol]} "
            f"(pip install {_FSSPEC_PACKAGE[protocol]}): {exc}"
        ) from None


# --- DuckDB ---------------------------------------------------------------------------------------


def register_duckdb(con, *locations: str | os.PathLike | Location) -> None:
    """Let DuckDB connection ``con`` read (``read_parquet``, ``read_csv``, globs) the object stores of
    ``locations`` under their ``duckdb_uri``; local locations need nothing. Idempotent per connection.

    S3 is read through pyarrow's own S3 client (as an fsspec filesystem), the other stores through
    their fsspec filesystems. DuckDB's httpfs extension would be the alternative, but a DuckDB
    extension must match DuckDB's exact version and is downloaded on first use; this needs neither.
    """
    registered = set(con.list_filesystems())
    for loc in map(Location.parse, locations):
        if loc.is_local:
            continue
        fs = duckdb_filesystem(loc.protocol)
        name = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if name not in registered:
            con.register_filesystem(fs)
            registered.add(name)


def duckdb_filesystem(protocol: str):
    """The fsspec filesystem ``register_duckdb`` hands DuckDB for ``protocol``."""
    if protocol == "s3":
        return _duckdb_s3(_environment_key("s3"))
    return fsspec_filesystem(protocol)


@functools.lru_cache(maxsize=4)
def _duckdb_s3(_environment: tuple):
    import pyarrow.fs as pafs
    from fsspec.implementations.arrow import ArrowFSWrapper

    class ArrowS3ForDuckDB(ArrowFSWrapper):
        protocol = ("s3", "s3a")  # DuckDB then reads s3a:// URIs (Spark's spelling) as well as s3://

    # Credentials from the AWS SDK's default chain (environment, ~/.aws profiles, roles).
    return ArrowS3ForDuckDB(pafs.S3FileSystem(**_arrow_s3_options()))


def _arrow_s3_options() -> dict:
    """pyarrow's S3FileSystem options from the standard variables it does not read itself."""
    options: dict = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        options["endpoint_override"] = parts.netloc or endpoint
        if parts.scheme:
            options["scheme"] = parts.scheme
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return options


def iter_chunks(loc: Location, chunk_size: int = 1 << 24) -> Iterator[bytes]:
    """The bytes of a file in chunks (streaming, for large raw files)."""
    with loc.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            yield chunk


def is_remote_location(value) -> bool:
    """Whether ``value`` is object storage: a remote ``Location`` or a URI string with ``://``; a
    ``Path`` or a plain path string never is (no parsing of local paths, which may contain ':')."""
    if isinstance(value, Location):
        return not value.is_local
    return isinstance(value, str) and "://" in value and is_remote(value)
