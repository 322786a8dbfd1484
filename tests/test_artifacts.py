"""The artifact cache: reuse, corruption detection, interrupted writes."""

import json

import pytest

from metasae_utils import artifacts


def _count(root, event, name=None):
    return sum(1 for r in artifacts.read_log(root) if r["event"] == event and (name is None or r["name"] == name))


def test_key_depends_on_spec_and_version(tmp_path):
    a = artifacts.entry("step", {"x": 1}, 1, root=tmp_path)
    assert artifacts.entry("step", {"x": 1}, 1, root=tmp_path).key == a.key
    assert artifacts.entry("step", {"x": 2}, 1, root=tmp_path).key != a.key
    assert artifacts.entry("step", {"x": 1}, 2, root=tmp_path).key != a.key


def test_existing_artifact_is_reused_not_recomputed(tmp_path):
    calls = []
    e = artifacts.entry("step", {"x": 1}, root=tmp_path)
    make = lambda: calls.append(1) or {"value": 42}
    assert e.json("result.json", make) == {"value": 42}
    e2 = artifacts.entry("step", {"x": 1}, root=tmp_path)
    assert e2.json("result.json", make) == {"value": 42}
    assert len(calls) == 1
    assert _count(tmp_path, "computed") == 1 and _count(tmp_path, "reused") == 1


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_file_is_detected_named_and_rebuilt(tmp_path, damage):
    e = artifacts.entry("step", {"x": 1}, root=tmp_path)
    path = e.get_or_make("blob.bin", lambda p: p.write_bytes(bytes(range(256)) * 100))
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[1234] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(bytes(data[:1000]))
    with pytest.warns(artifacts.CorruptArtifactWarning, match="blob.bin"):
        path2 = e.get_or_make("blob.bin", lambda p: p.write_bytes(bytes(range(256)) * 100))
    assert path2.read_bytes() == bytes(range(256)) * 100
    assert _count(tmp_path, "corrupt", "blob.bin") == 1 and _count(tmp_path, "computed", "blob.bin") == 2


def test_interrupted_write_is_never_used(tmp_path):
    e = artifacts.entry("step", {"x": 1}, root=tmp_path)

    def crash(p):
        p.write_text("half")
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        e.get_or_make("out.txt", crash)
    assert not e.has("out.txt")
    # a file renamed into place but whose checksum was never written counts as unfinished too
    (e.path / "out.txt").write_text("unchecked")
    assert not e.has("out.txt")
    assert e.get_or_make("out.txt", lambda p: p.write_text("good")).read_text() == "good"


def test_folders_are_checksummed_as_a_whole(tmp_path):
    e = artifacts.entry("step", {"x": 1}, root=tmp_path)

    def write(p):
        p.mkdir()
        (p / "a.json").write_text(json.dumps({"a": 1}))
        (p / "w.bin").write_bytes(b"\x00" * 64)
    folder = e.get_or_make("sae", write)
    (folder / "w.bin").write_bytes(b"\x01" * 64)
    with pytest.warns(artifacts.CorruptArtifactWarning, match="sae"):
        assert not e.has("sae")
