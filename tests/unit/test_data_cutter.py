"""The data cutter: a child process cuts the policy data and sends back only what changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from egress.errors import ConfigError
from egress.policy.data_cutter import DataCutter, cut


def _doc(agents: dict[str, list[str]], killed: dict[str, bool] | None = None) -> dict:
    rows: dict[str, dict] = {}
    for key, hosts in agents.items():
        user, name = key.split("/")
        rows.setdefault(user, {})[name] = {"rules": [{"id": "r", "hosts": hosts}]}
    return {"egress": {"agents": rows, "killed": killed or {}}}


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def cutter():
    c = DataCutter()
    yield c
    c.close()


def test_first_cut_is_full_then_only_changes(tmp_path: Path, cutter: DataCutter) -> None:
    data = _write(tmp_path / "d.json", _doc({"u1/a": ["x"], "u1/b": ["y"], "u2/c": ["z"]}))
    first = cutter.cut("t", data)
    assert first.full and first.changed_count == 3
    slices = first.apply(None)
    _write(data, _doc({"u1/a": ["x"], "u1/b": ["CHANGED"], "u3/d": ["new"]}))
    delta = cutter.cut("t", data)
    assert not delta.full
    assert {(u, n) for u, row in delta.changed.items() for n in row} == {("u1", "b"), ("u3", "d")}
    assert delta.removed == (("u2", "c"),)
    after = delta.apply(slices)
    assert json.loads(after.entry("u1", "b")[0])["rules"][0]["hosts"] == ["CHANGED"]
    assert after.entry("u1", "a") == slices.entry("u1", "a")  # untouched entry, same object
    assert after.entry("u2", "c")[0] == b"" and "u2" not in after.agents
    assert after.agent_count == 3
    # a second token has no baseline: it gets everything
    assert cutter.cut("other", data).full


def test_shared_changes_come_back_with_no_agent_change(tmp_path: Path, cutter: DataCutter) -> None:
    data = _write(tmp_path / "d.json", _doc({"u/a": ["x"]}))
    base = cutter.cut("t", data)
    _write(data, _doc({"u/a": ["x"]}, killed={"*": True}))
    delta = cutter.cut("t", data)
    assert delta.changed_count == 0 and delta.shared_digest != base.shared_digest
    assert dict(delta.parts)[("egress", "killed")] == b'{"*":true}'


def test_bad_json_is_refused_and_the_baseline_kept(tmp_path: Path, cutter: DataCutter) -> None:
    data = _write(tmp_path / "d.json", _doc({"u/a": ["x"]}))
    cutter.cut("t", data)
    data.write_text("{broken")
    with pytest.raises(ConfigError) as e:
        cutter.cut("t", data)
    assert e.value.reason == "policy_data_invalid"
    _write(data, _doc({"u/a": ["x"], "u/b": ["y"]}))
    assert cutter.cut("t", data).changed_count == 1  # against the last good cut


def test_a_dead_child_is_replaced_and_cuts_in_full(tmp_path: Path, cutter: DataCutter) -> None:
    data = _write(tmp_path / "d.json", _doc({"u/a": ["x"]}))
    cutter.cut("t", data)
    assert cutter._proc is not None
    cutter._proc.kill()
    cutter._proc.wait()
    again = cutter.cut("t", data)
    assert again.full and again.changed_count == 1


def test_inline_cut_matches_the_child(tmp_path: Path, cutter: DataCutter) -> None:
    data = _write(tmp_path / "d.json", _doc({"u/a": ["x"], "v/b": ["y"]}))
    inline, digests = cut(data, None)
    child = cutter.cut("t", data)
    assert inline.changed == child.changed and inline.data_digest == child.data_digest
    assert set(digests) == {("u", "a"), ("v", "b")}
