"""tether.listcache: the DCCs' last known service lists on disk (the Blender add-on's farm lists use it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_save_load_is_per_profile_and_endpoint(tmp_path: Path) -> None:
    from tether import listcache

    lists = {"instance_type": [("cpu-8", "cpu-8 (8 CPU)", "eight cores")], "project": [("show", "show", "")]}
    saved = listcache.save("farm", "studio", "https://user:pw@farm.example/api/?key=abc#x", lists, 1000.0,
                           where=tmp_path)
    assert saved.url == "https://farm.example/api"
    assert [p.name for p in tmp_path.iterdir()] == [saved.path.name if saved.path else ""]  # no temp file left
    text = saved.path.read_text() if saved.path else ""
    assert "pw" not in text and "abc" not in text and "user" not in text
    again = listcache.load("farm", "studio", "https://farm.example/api/", where=tmp_path)
    assert again is not None and again.lists == lists and again.fetched_at == 1000.0
    assert again.ids("instance_type") == ["cpu-8"]
    assert listcache.load("farm", "other", "https://farm.example/api", where=tmp_path) is None
    assert listcache.load("farm", "studio", "https://farm2.example/api", where=tmp_path) is None
    assert listcache.not_listed(lists, {"instance_type": "gpu-1", "project": "show", "blender_version": "5.0"}) == \
        [("instance_type", "gpu-1")]

    # A damaged or foreign file is as good as none; the next save rewrites it.
    assert saved.path is not None
    saved.path.write_text("{not json")
    assert listcache.load("farm", "studio", "https://farm.example/api", where=tmp_path) is None
    saved.path.write_text(json.dumps({**json.loads(text), "format": 99}))
    assert listcache.load("farm", "studio", "https://farm.example/api", where=tmp_path) is None


def test_save_refuses_a_secret(tmp_path: Path) -> None:
    from tether import listcache
    from tether.errors import register_secret

    secret = "s3cr3t-token-value-for-lists"
    register_secret(secret)
    with pytest.raises(ValueError, match="credential"):
        listcache.save("farm", "studio", "https://farm.example", {"project": [(secret, secret, "")]}, where=tmp_path)
    assert list(tmp_path.iterdir()) == []
