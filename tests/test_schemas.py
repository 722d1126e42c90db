"""The shipped JSON Schemas: valid 2020-12 schemas, documented, consistent, and
accepting the documented file formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from buildpolicy.data import policies_dir, schema_dir
from buildpolicy.policy.tomlpos import parse_toml
from buildpolicy.policy.validate import validate_document

SCHEMA_FILES = sorted(schema_dir().glob("*.json"))
FIXTURES = Path(__file__).parent / "fixtures" / "validate"


def load(name: str) -> dict:
    return json.loads((schema_dir() / f"{name}.schema.json").read_text(encoding="utf-8"))


def test_both_schemas_are_shipped():
    assert {p.name for p in SCHEMA_FILES} >= {"profile.schema.json", "policy.schema.json"}


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_is_valid_draft_2020_12(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/" + path.name)
    assert schema["title"]
    assert schema["description"]


def _property_schemas(node, where="#"):
    """Yield (location, schema) for every property-like subschema in ``node``."""
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            yield f"{where}/properties/{name}", sub
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            yield f"{where}/additionalProperties", extra
        items = node.get("items")
        if isinstance(items, dict):
            yield f"{where}/items", items
        for key, value in node.items():
            yield from _property_schemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _property_schemas(value, f"{where}/{index}")


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_property_has_a_description(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    missing = [where for where, sub in _property_schemas(schema) if not sub.get("description")]
    assert missing == []
    for name, definition in schema.get("$defs", {}).items():
        assert definition.get("description"), name


def test_shared_definitions_are_identical():
    policy, profile = load("policy"), load("profile")
    assert policy["$defs"] == profile["$defs"]
    for key, ref in (("rule", "#/$defs/rules"), ("knobs", "#/$defs/knobs")):
        assert policy["properties"][key]["$ref"] == profile["properties"][key]["$ref"] == ref


def test_rule_keys_are_exactly_the_documented_ones():
    rule = load("policy")["$defs"]["rule"]
    assert list(rule["properties"]) == [
        "id", "description", "when", "knob", "status", "env", "unset",
        "decide", "rustflags", "priority", "force", "enabled",
    ]
    assert rule["required"] == ["id"]
    assert rule["additionalProperties"] is False


def test_profile_top_level_keys():
    assert list(load("profile")["properties"]) == [
        "policies", "default_profile", "extends", "plugin_paths",
        "disable_plugins", "feature_profiles", "knobs", "rule",
    ]
    assert list(load("policy")["properties"]) == ["rule", "knobs"]


VALID_POLICY_DATA = [
    {},
    {"rule": []},
    {"rule": [{"id": "x"}]},
    {"rule": [{"id": "a.b:c-d_e", "env": {"A": "1"}, "decide": {"s": "off", "n": 2, "b": False}}]},
    {"knobs": {"jobs": 4, "ratio": 0.5, "flag": True, "hosts": ["a", "b"], "x": "y"}},
    {"knobs": {"linker": {"aliases": ["OLD_NAME", "_X"], "default": "auto"}}},
    {"linker": {"skip_profiles": ["release-lto"]}, "anything": {"nested": {"deep": [1]}}},
]

INVALID_POLICY_DATA = [
    {"rule": [{}]},
    {"rule": [{"id": "-leading-dash"}]},
    {"rule": [{"id": "x", "env": {"A": 1}}]},
    {"rule": [{"id": "x", "decide": {"a": 1.5}}]},
    {"rule": [{"id": "x", "knob": "Upper"}]},
    {"rule": [{"id": "x", "priority": True}]},
    {"rule": {"id": "x"}},
    {"knobs": {"9jobs": 1}},
    {"knobs": {"jobs": [[1]]}},
    {"knobs": {"linker": {"aliases": ["has-dash"]}}},
    {"knobs": {"linker": {"type": "float"}}},
    {"knobs": {"linker": {"values": []}}},
    {"toplevel_scalar": 1},
    {"toplevel_array": [{}]},
]


@pytest.mark.parametrize("data", VALID_POLICY_DATA)
def test_valid_policy_data(data):
    assert list(Draft202012Validator(load("policy")).iter_errors(data)) == []


@pytest.mark.parametrize("data", INVALID_POLICY_DATA)
def test_invalid_policy_data(data):
    assert list(Draft202012Validator(load("policy")).iter_errors(data)) != []


def test_profile_accepts_profile_only_keys_and_policy_rejects_them():
    data = {"policies": ["p"], "default_profile": "dev", "feature_profiles": {"m": ["--no-default-features"]}}
    assert list(Draft202012Validator(load("profile")).iter_errors(data)) == []
    assert list(Draft202012Validator(load("policy")).iter_errors(data)) != []


@pytest.mark.parametrize("name, kind", [("valid_policy.toml", "policy"), ("valid_profile.toml", "profile")])
def test_documented_examples_validate_clean(name, kind):
    assert validate_document(parse_toml(FIXTURES / name), kind) == []


@pytest.mark.parametrize(
    "path", sorted(policies_dir().glob("*.toml")), ids=lambda p: p.name
)
def test_every_shipped_policy_validates(path):
    assert [str(d) for d in validate_document(parse_toml(path), "policy")] == []
