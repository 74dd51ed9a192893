"""Per-peer policy parsed from the node's [peers] tables."""

from __future__ import annotations

import pytest

from federation.errors import PolicyRefused
from federation.policy import parse_peers
from node.config import load_config
from node.errors import ConfigError
from suites import labels

PIN = "sha256:" + "ab" * 32


def test_a_peer_table_parses_with_defaults() -> None:
    peers = parse_peers({"B.Example": {"pins": [PIN], "endpoints": ["https://b1/", "https://b2"]}})
    policy = peers["b.example"]
    assert policy.trust == "pinned"
    assert policy.urls() == ("https://b1", "https://b2")
    assert policy.min_suite == "cnsa2"
    policy.check_suite(labels.SUITE_ID_CNSA2)
    with pytest.raises(PolicyRefused):
        policy.check_suite(labels.SUITE_ID_XWING)  # a downgrade below the policy


@pytest.mark.parametrize(
    "table",
    [
        {},  # pinned without pins
        {"pins": ["sha256:short"]},
        {"pins": [PIN], "trust": "blind"},
        {"pins": [PIN], "min_suite": "rsa"},
        {"pins": [PIN], "rate_per_s": 0},
        {"pins": [PIN], "colour": "blue"},
        {"pins": PIN},
    ],
)
def test_invalid_peer_tables_are_refused(table: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="peers"):
        parse_peers({"b.example": table})


def test_a_denied_peer_needs_no_pins_and_tofu_needs_none() -> None:
    peers = parse_peers({"d.example": {"allow": False}, "t.example": {"trust": "tofu"}})
    assert not peers["d.example"].allow
    assert peers["t.example"].trust == "tofu"


def test_the_node_configuration_reads_peers_from_toml(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "node.toml"
    path.write_text(
        f'open_federation = false\n[peers."b.example"]\npins = ["{PIN}"]\nmin_suite = "xwing"\n'
    )
    config = load_config(path, env={}, overrides={"domain": "a.example", "data_dir": "/d"})
    assert config.peer_policies()["b.example"].min_suite == "xwing"
    path.write_text('[peers."b.example"]\ntrust = "pinned"\n')
    with pytest.raises(ConfigError):
        load_config(path, env={}, overrides={"domain": "a.example", "data_dir": "/d"})
    path.write_text(f'[peers."a.example"]\npins = ["{PIN}"]\n')
    with pytest.raises(ConfigError):  # a domain cannot peer with itself
        load_config(path, env={}, overrides={"domain": "a.example", "data_dir": "/d"})
