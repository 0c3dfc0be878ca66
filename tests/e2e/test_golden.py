"""Golden canonical events against the canonical event's JSON Schema.

tests/unit/test_map.c checks that every inbound payload normalizes to its
tests/data/golden/*.expected.json; this suite checks that each of those
expected events is a valid schemas/event.v1.json event (draft 2020-12), so a
golden file can never bless an event that receivers would refuse.
Needs Debian's python3-jsonschema."""
import json
from pathlib import Path

import jsonschema  # Debian: python3-jsonschema (in the Makefile's DEB_PKGS)
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schemas" / "event.v1.json"
GOLDEN = ROOT / "tests" / "data" / "golden"
EXPECTED = sorted(GOLDEN.glob("*.expected.json"))


def validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def where(error):
    return "/" + "/".join(str(p) for p in error.absolute_path)


def test_schema_is_valid_draft_2020_12():
    validator()


def test_golden_files_exist():
    assert len(EXPECTED) >= 10, f"no golden files in {GOLDEN}"


@pytest.mark.parametrize("path", EXPECTED, ids=[p.name for p in EXPECTED])
def test_expected_events_match_schema(path):
    events = json.loads(path.read_text())
    assert isinstance(events, list) and events, \
        f"{path.name}: expected a non-empty JSON array of events"
    v = validator()
    problems = []
    for n, event in enumerate(events):
        ident = event.get("id", f"#{n}") if isinstance(event, dict) else f"#{n}"
        for err in sorted(v.iter_errors(event), key=lambda e: list(e.absolute_path)):
            problems.append(f"{path.name}: event {ident}: at {where(err)}: {err.message}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", EXPECTED, ids=[p.name for p in EXPECTED])
def test_expected_ids_are_distinct(path):
    events = json.loads(path.read_text())
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), f"{path.name}: repeated ids {ids}"
    if len(events) > 1:
        assert all(i.endswith(f"-{n + 1}") for n, i in enumerate(ids)), ids


def test_a_broken_event_is_refused():
    """The check itself can fail: a known-bad event yields the error path."""
    good = json.loads(EXPECTED[0].read_text())[0]
    bad = json.loads(json.dumps(good))
    bad["severity"] = "urgent"
    bad["data"]["labels"]["n"] = 3
    del bad["data"]["title"]
    paths = sorted(where(e) for e in validator().iter_errors(bad))
    assert paths == ["/data", "/data/labels/n", "/severity"], paths
