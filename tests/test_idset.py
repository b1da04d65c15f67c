"""reportgen.idset: the bounded-memory id set batch commands remember ids in (issue 16)."""

import os

import pytest

from reportgen.idset import IdSet


@pytest.mark.parametrize("in_memory", [0, 3, 1000])
def test_same_answers_in_memory_and_on_disk(in_memory):
    s = IdSet(in_memory=in_memory)
    ids = [f"r{i % 7}" for i in range(20)] + ["ünïcode id", "", "a'b\"c"]
    news = [s.add(i) for i in ids]
    # an id is new exactly once, whichever store holds it
    assert news == [i not in ids[:k] for k, i in enumerate(ids)]
    assert len(s) == len(set(ids)) and set(s) == set(ids)
    assert all(i in s for i in ids) and "r7" not in s and None not in s
    assert s.on_disk == (in_memory < len(set(ids)))
    s.close()


def test_spill_keeps_the_ids_already_seen_and_removes_its_file(tmp_path):
    s = IdSet(["a", "b"], in_memory=2, tmp_dir=str(tmp_path))
    assert not s.on_disk and not list(tmp_path.iterdir())
    assert s.add("c") and s.on_disk
    files = list(tmp_path.iterdir())
    assert len(files) == 1
    assert not s.add("a") and not s.add("c") and s.add("d") and len(s) == 4
    with s:
        pass
    assert not os.path.exists(files[0])


def test_negative_size_is_refused():
    with pytest.raises(ValueError, match="in_memory"):
        IdSet(in_memory=-1)
