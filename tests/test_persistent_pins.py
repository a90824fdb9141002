"""PersistentMap, the state engine's immutable mapping: what a dict would do, for every key a
bucket may share, and the original left alone by every change."""

from __future__ import annotations

from monitor.core.persistent import PersistentMap


def test_get_gives_the_default_for_a_missing_key_and_the_value_otherwise():
    pmap = PersistentMap({"a": 1})
    assert pmap.get("a", 7) == 1
    assert pmap.get("missing", 7) == 7
    assert pmap.get("missing") is None


def test_it_reads_as_the_dict_it_holds():
    assert repr(PersistentMap({"a": 1})) == "PersistentMap({'a': 1})"
    assert repr(PersistentMap()) == "PersistentMap({})"


def test_it_behaves_as_a_dict_through_many_sets_and_deletes_sharing_buckets():
    """Integers hash to themselves: keys 128 apart share a bucket of the 128."""
    keys = [i * 128 + b for b in range(3) for i in range(5)]
    pmap: PersistentMap[int, str] = PersistentMap()
    model: dict[int, str] = {}
    versions = []
    for key in keys:
        pmap = pmap.set(key, f"v{key}")
        model[key] = f"v{key}"
        versions.append((pmap, dict(model)))
    pmap = pmap.set(keys[0], "again")  # overwriting leaves the size as it was
    model[keys[0]] = "again"
    assert len(pmap) == len(model) == 15
    for key in keys[::2]:
        pmap = pmap.delete(key)
        del model[key]
    assert dict(pmap) == model and len(pmap) == len(model)
    assert set(pmap) == set(model) and all(key in pmap for key in model)
    assert keys[0] not in pmap and pmap.get(keys[0]) is None
    for version, expected in versions:  # every earlier map is as it was
        assert dict(version) == expected and len(version) == len(expected)


def test_it_is_built_from_pairs_or_a_mapping():
    assert dict(PersistentMap([("a", 1), ("b", 2)])) == {"a": 1, "b": 2}
    assert PersistentMap({"a": 1}) == {"a": 1}
    assert len(PersistentMap([("a", 1), ("a", 2)])) == 1


def test_a_key_bound_to_none_in_one_map_only_is_a_change():
    assert PersistentMap({"a": None}).changed_keys(PersistentMap()) == {"a"}
    assert PersistentMap().changed_keys(PersistentMap({"a": None})) == {"a"}
    assert PersistentMap({"a": None}).changed_keys(PersistentMap({"a": None})) == set()
