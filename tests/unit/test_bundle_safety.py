"""Zip bombs and unsafe entries: refused by the server check (from the central directory, nothing
inflated), by the replica's extractor (counting bytes written) and by the packager, with one message."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import struct
import time
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

import fn
from fnplatform.bundles.extract import extract_bundle
from fnplatform.bundles.packaging import (
    MANIFEST_NAME,
    BundleError,
    Manifest,
    build_bundle,
    build_zip,
    collect_files,
    inspect_bundle,
)
from fnplatform.bundles.safety import (
    RATIO_GRACE_BYTES,
    BundleLimits,
    BundleTooLarge,
    Entry,
    check_entries,
    entry_problem,
)
from fnplatform.storage.blobs import LocalStore, StoreConfig, bundle_key, fetch_bundle
from fnplatform.storage.cache import CachePolicy

from .conftest import REPO_ROOT, ProjectFactory

GIB = 1024**3
MANIFEST = Manifest(functions=(fn.FunctionSpec(name="add", entrypoint="app:add"),)).to_json()
SMALL = BundleLimits(max_unpacked_bytes=4 * 1024 * 1024, max_entries=50, max_manifest_bytes=64 * 1024, max_ratio=100)
Member = tuple[str | zipfile.ZipInfo, bytes]


def make_zip(members: list[Member], *, declare: dict[str, int] | None = None) -> bytes:
    """A zip of *members*; *declare* overrides an entry's declared uncompressed size in the central directory."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which one bomb needs
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members:
                archive.writestr(name, data)
            for info in archive.filelist:
                if declare and info.filename in declare:
                    info.file_size = declare[info.filename]
    return buffer.getvalue()


def bundle(*members: Member, declare: dict[str, int] | None = None) -> bytes:
    return make_zip([(MANIFEST_NAME, MANIFEST), ("app.py", b"def add(a, b):\n    return a + b\n"), *members],
                    declare=declare)


def typed(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def inflated_manifest() -> bytes:
    body = json.loads(MANIFEST)
    body["padding"] = " " * (2 * SMALL.max_manifest_bytes)
    return make_zip([(MANIFEST_NAME, json.dumps(body).encode()), ("app.py", b"")])


def many_entries() -> bytes:
    return bundle(*[(f"data/{i}.txt", b"x") for i in range(SMALL.max_entries)])


def overall_ratio() -> bytes:
    each = RATIO_GRACE_BYTES - 1  # every entry under the per-entry grace; together far over the ratio
    return bundle(*[(f"pad/{i}.txt", b"\0" * each) for i in range(20)])


# (bundle, the message's expected fragment, whether it is a cap (413) rather than a refused entry (400))
BOMBS: dict[str, tuple[Callable[[], bytes], str, bool]] = {
    "huge declared size": (lambda: bundle(("big.bin", b"x" * 100), declare={"big.bin": 10 * GIB}),
                           "the bundle's unpacked size is 10,737,", True),
    "many entries": (many_entries, "the bundle's entry count is 52, over the limit of 50 (FN_MAX_BUNDLE_ENTRIES)", True),
    "high ratio": (lambda: bundle(("zeros.bin", b"\0" * (2 * 1024 * 1024))),
                   "entry 'zeros.bin''s compression ratio", True),
    "high overall ratio": (overall_ratio, "the bundle's compression ratio", True),
    "inflated manifest": (inflated_manifest, f"{MANIFEST_NAME}'s size is ", True),
    "symlink": (lambda: bundle((typed("link.py", stat.S_IFLNK | 0o777), b"/etc/passwd")),
                "unsafe entry 'link.py': it is a symlink", False),
    "device": (lambda: bundle((typed("tty", stat.S_IFCHR | 0o666), b"")), "it is a device or other special file", False),
    "duplicate names": (lambda: bundle(("app.py", b"evil = 1\n")), "unsafe entry 'app.py': the name appears twice", False),
    "dot-dot path": (lambda: bundle(("pkg/../../evil.py", b"")), "unsafe entry 'pkg/../../evil.py': a '..' component", False),
    "absolute path": (lambda: bundle(("/etc/cron.d/evil", b"")), "unsafe entry '/etc/cron.d/evil': an absolute path", False),
    "backslash path": (lambda: bundle(("..\\evil.py", b"")), "backslashes are not allowed", False),
    "file where a folder is": (lambda: bundle(("pkg", b""), ("pkg/mod.py", b"")), "'pkg' is a file", False),
    ".so": (lambda: bundle(("lib/fast.cpython-311-x86_64-linux-gnu.so", b"\x7fELF")),
            "entry 'lib/fast.cpython-311-x86_64-linux-gnu.so' is refused: native code", False),
    "versioned .so": (lambda: bundle(("lib/libz.so.1.2", b"\x7fELF")), "entry 'lib/libz.so.1.2' is refused: native code",
                      False),
    ".pth": (lambda: bundle(("evil.pth", b"import os\n")), "entry 'evil.pth' is refused: a path-configuration file",
             False),
    ".pyc": (lambda: bundle(("app2.pyc", b"\0")), "entry 'app2.pyc' is refused: compiled bytecode", False),
    "stdlib shadowing": (lambda: bundle(("json.py", b"")), "top-level module(s) 'json' would shadow", False),
    "ray shadowing": (lambda: bundle(("ray/__init__.py", b"")), "'ray' would shadow", False),
    "fn shadowing": (lambda: bundle(("fn.py", b"")), "(entry 'fn.py')", False),
}


def check_on_server(data: bytes, tmp_path: Path) -> None:
    inspect_bundle(data, expected_sha256=hashlib.sha256(data).hexdigest(), limits=SMALL)


def check_on_replica(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    path.write_bytes(data)
    try:
        extract_bundle(path, tmp_path / "out", SMALL)
    finally:
        assert not (tmp_path / "out").exists()  # refused before anything is written


@pytest.mark.parametrize("check", [check_on_server, check_on_replica], ids=["server", "replica"])
@pytest.mark.parametrize("shape", sorted(BOMBS))
def test_every_bomb_shape_is_refused(shape: str, check: Callable[[bytes, Path], None], tmp_path: Path) -> None:
    build, fragment, is_cap = BOMBS[shape]
    with pytest.raises(BundleError) as info:
        check(build(), tmp_path)
    assert fragment in str(info.value)
    assert isinstance(info.value, BundleTooLarge) is is_cap


def test_cap_messages_name_the_cap_the_value_and_the_setting() -> None:
    with pytest.raises(BundleTooLarge) as info:
        inspect_bundle(bundle(("big.bin", b"x" * 100), declare={"big.bin": 10 * GIB}))
    assert str(info.value) == (
        f"the bundle's unpacked size is {10 * GIB + len(MANIFEST) + 32:,} bytes, over the limit of 67,108,864 "
        f"(FN_MAX_UNPACKED_MB); list large files in .fnignore or declare model files as artifacts, or raise "
        f"FN_MAX_UNPACKED_MB in the control plane's environment")


def test_a_normal_bundle_passes_the_server_and_unpacks(make_project: ProjectFactory, tmp_path: Path) -> None:
    root = make_project({"app.py": "import fn\n", "pkg/__init__.py": "", "pkg/data.json": '{"a": 1}\n',
                         "run.sh": "#!/bin/sh\n"})
    (root / "run.sh").chmod(0o755)
    data = build_zip(collect_files(root), Manifest.from_json(MANIFEST), max_bytes=10**6)
    assert inspect_bundle(data, limits=SMALL).functions[0].name == "add"
    (tmp_path / "b.zip").write_bytes(data)
    written = extract_bundle(tmp_path / "b.zip", tmp_path / "out", SMALL)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert written == sum(info.file_size for info in archive.infolist())
        for name in archive.namelist():
            assert (tmp_path / "out" / name).read_bytes() == archive.read(name)
    assert stat.S_IMODE((tmp_path / "out" / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "out" / "app.py").stat().st_mode) == 0o644


def test_folder_entries_and_zips_without_unix_modes_pass() -> None:
    info = zipfile.ZipInfo("pkg/")
    info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
    inspect_bundle(bundle((info, b""), ("pkg/mod.py", b"")))


def test_the_server_check_never_inflates_a_member() -> None:
    """A member declaring 10 GiB is refused at once, with a few MiB of memory at most."""
    data = bundle(("big.bin", b"\0" * 1000), declare={"big.bin": 10 * GIB})
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(BundleTooLarge, match="unpacked size is 10,737,"):
            inspect_bundle(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 4 * 1024 * 1024


def test_the_server_check_reads_only_the_manifest(tmp_path: Path) -> None:
    """A member whose compressed bytes are garbage passes: the server never inflates it (the replica would refuse it)."""
    text = "".join(f"line {i} of a text that compresses to a few hundred bytes\n" for i in range(200)).encode()
    data = bytearray(bundle(("garbage.txt", text)))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("garbage.txt")
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len
    data[start:start + info.compress_size] = b"\xff" * info.compress_size
    with pytest.raises(zlib.error), zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        archive.read("garbage.txt")  # really not inflatable
    manifest = inspect_bundle(bytes(data))
    assert manifest.functions[0].name == "add"
    (tmp_path / "b.zip").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"entry 'garbage\.txt' cannot be unpacked: Error -3"):
        extract_bundle(tmp_path / "b.zip", tmp_path / "out", SMALL)


def test_a_central_directory_with_more_headers_than_it_declares_is_refused() -> None:
    data = bytearray(many_entries())
    eocd = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, eocd + 8, 1, 1)  # the end record claims one entry
    with pytest.raises(BundleTooLarge, match="entry count is more than 50"):
        inspect_bundle(bytes(data), limits=SMALL)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_only_stored_and_deflated_members(method: int) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(MANIFEST_NAME, MANIFEST)
        archive.writestr("app.py", b"", compress_type=method)
    with pytest.raises(BundleError, match=f"compression method {method}; only stored and deflated"):
        inspect_bundle(buffer.getvalue())


def test_an_encrypted_member_is_refused() -> None:
    data = bytearray(bundle())
    central = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 1)  # app.py's central header
    struct.pack_into("<H", data, central + 8, 0x1)
    with pytest.raises(BundleError, match=r"encrypted entry 'app\.py'"):
        inspect_bundle(bytes(data))


def test_the_extractor_counts_bytes_written_not_declared(tmp_path: Path) -> None:
    """A header declaring less than the member holds passes the server (it reads headers only); the replica refuses it."""
    data = bundle(("data.txt", b"payload " * 4096), declare={"data.txt": 100})
    inspect_bundle(data)
    (tmp_path / "b.zip").write_bytes(data)
    with pytest.raises(BundleError) as info:
        extract_bundle(tmp_path / "b.zip", tmp_path / "out", SMALL)
    assert "entry 'data.txt' cannot be unpacked: Bad CRC-32" in str(info.value)
    assert (tmp_path / "out" / "data.txt").stat().st_size <= 100  # stopped at what the header declared


def test_fetch_bundle_refuses_a_bomb_in_the_store_and_leaves_nothing(tmp_path: Path) -> None:
    """A bundle that reached the store without the server check (written to S3 directly) is refused by the replica."""
    data = bundle(("zeros.bin", b"\0" * (2 * 1024 * 1024)))
    digest = hashlib.sha256(data).hexdigest()
    store = LocalStore(StoreConfig(kind="local", root=str(tmp_path / "store")))
    store.write(bundle_key(digest), data)
    with pytest.raises(BundleTooLarge, match="compression ratio"):
        fetch_bundle(store.config, digest, tmp_path / "cache", CachePolicy(limits=SMALL))
    assert list((tmp_path / "cache").iterdir()) == []


# --- the packager refuses the same things, with the same message ---------------------------------


APP = "import fn\n\n\n@fn.function()\ndef add(a: int, b: int) -> int:\n    return a + b\n"


@pytest.mark.parametrize("name", ["lib/fast.so", "site.pth", "json.py", "ray/__init__.py"])
def test_the_packager_refuses_before_importing_with_the_servers_message(name: str, make_project: ProjectFactory) -> None:
    root = make_project({"app.py": "raise SystemExit('must not be imported')\n", name: ""})
    with pytest.raises(BundleError) as packaged:
        build_bundle(root)
    with pytest.raises(BundleError) as served:
        inspect_bundle(bundle((name, b"")))
    assert str(packaged.value) == str(served.value)


def test_the_packager_refuses_a_project_over_the_unpacked_cap(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": APP, "data.txt": "x" * 5000})
    with pytest.raises(BundleTooLarge, match=r"unpacked size is [\d,]+ bytes, over the limit of 4,096 \(FN_MAX_UNPACKED_MB\)"):
        build_bundle(root, limits=BundleLimits(max_unpacked_bytes=4096))


def test_the_packager_refuses_too_many_files(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": APP, **{f"data/{i}.txt": "" for i in range(5)}})
    with pytest.raises(BundleTooLarge, match="entry count is 6, over the limit of 5"):
        build_bundle(root, limits=BundleLimits(max_entries=5))


def test_the_packager_refuses_a_padding_file(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": APP, "zeros.txt": "a" * (1024 * 1024)})
    with pytest.raises(BundleTooLarge, match=r"entry 'zeros\.txt''s compression ratio"):
        build_bundle(root)


SHIPPED = ["functions/auth", "functions/vectorize", "functions/examples/ensemble", "functions/examples/flow",
           "functions/examples/pipeline", "functions/examples/routing", "cli/fnctl/examples/hello"]


@pytest.mark.parametrize("project", SHIPPED)
def test_the_shipped_projects_pass_the_rules(project: str) -> None:
    """Names, types and sizes of what they bundle (discovery, which imports them, is tested with each project)."""
    files = collect_files(REPO_ROOT / project)
    assert files
    # The projects' ONNX files are declared artifacts (uploaded apart, never in the zip); built by
    # functions/vectorize/build_models.py, so present only where the test script has run.
    check_entries([Entry(name, path.stat().st_size) for name, path in files if not name.endswith(".onnx")],
                  BundleLimits())


# --- the rules themselves -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["app.py", "pkg/sub/mod.py", "data/model.onnx", "pkg/", "lib/solver.sol",
                                  "notes.pth.txt", "a.so.txt"])
def test_names_that_are_fine(name: str) -> None:
    assert entry_problem(name) is None


@pytest.mark.parametrize("name", ["", "a//b.py", "./a.py", "a/./b.py", "C:/x.py", "a\x00.py", "x" * 1025,
                                  "a/" + "b" * 256 + ".py"])
def test_names_that_are_refused(name: str) -> None:
    assert entry_problem(name) is not None


def test_a_folder_entry_holding_bytes_is_refused() -> None:
    with pytest.raises(BundleError, match="a folder that holds 3 bytes"):
        check_entries([Entry("pkg/", 3, kind="dir")], BundleLimits())


def test_small_files_are_not_judged_by_their_ratio() -> None:
    check_entries([Entry("blank.txt", RATIO_GRACE_BYTES, compressed=1)], BundleLimits(), archive_bytes=10**6)


@pytest.mark.parametrize("field", ["max_unpacked_bytes", "max_entries", "max_manifest_bytes", "max_ratio"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(fn.ConfigError, match=f"bundle limit {field}=0 must be positive"):
        BundleLimits(**{field: 0})


def test_limits_travel_as_plain_data() -> None:
    assert BundleLimits.from_dict(SMALL.to_dict()) == SMALL
    assert BundleLimits.from_dict(None) == BundleLimits()
    assert BundleLimits.from_dict({"max_entries": 7, "from_a_newer_server": 1}) == BundleLimits(max_entries=7)


def as_zip64(data: bytes) -> bytes:
    """The same zip with a zip64 end record (what zipfile writes past 65,535 entries or 4 GiB)."""
    eocd = data.rindex(b"PK\x05\x06")
    count, cd_size, cd_offset = struct.unpack_from("<HLL", data, eocd + 10)
    record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, cd_size, cd_offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:eocd] + record + locator + end


def test_zip64_end_records_are_read() -> None:
    data = as_zip64(bundle(("pkg/mod.py", b"X = 1\n")))
    assert inspect_bundle(data).functions[0].name == "add"
    with pytest.raises(BundleTooLarge, match="entry count is 3, over the limit of 2"):
        inspect_bundle(data, limits=BundleLimits(max_entries=2))


def _non_utf8_name() -> bytes:
    """An entry flagged UTF-8 whose name bytes are not UTF-8 (zipfile would raise UnicodeDecodeError)."""
    data = bytearray(bundle(("abc.py", b"")))
    at = data.rfind(b"abc.py")  # the central directory's copy of the name
    data[at:at + 3] = b"\xff\xfe\xfd"
    flags_at = data.rfind(b"PK\x01\x02", 0, at) + 8
    struct.pack_into("<H", data, flags_at, struct.unpack_from("<H", data, flags_at)[0] | 0x800)
    return bytes(data)


@pytest.mark.parametrize("data", [
    pytest.param(make_zip([(MANIFEST_NAME, b'{"functions": [], "artifacts": []}'), ("app.py", b"")]), id="artifacts-list"),
    pytest.param(make_zip([(MANIFEST_NAME, b"[" * 50_000 + b"]" * 50_000), ("app.py", b"")]), id="nested-manifest"),
    pytest.param(_non_utf8_name(), id="non-utf8-name"),
])
def test_crafted_bundles_are_a_bundle_error_not_a_crash(data: bytes) -> None:
    with pytest.raises(BundleError):
        inspect_bundle(data, limits=SMALL)
