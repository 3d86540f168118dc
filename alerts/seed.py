"""Default rules for the monitored province, shipped as `seed_rules.yaml` (luật mặc định)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import Engine

from alerts.store import ChannelTarget, RuleSpec, RuleValidationError, get_rule, save_rule, validate_rule
from index.backend import SearchBackend

SEED_RULES_FILE = Path(__file__).with_name("seed_rules.yaml")
SEED_OWNER = "he-thong"


def _fill(value: Any, province: str) -> Any:
    if isinstance(value, str):
        return value.replace("{province}", province)
    if isinstance(value, list):
        return [_fill(v, province) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, province) for k, v in value.items()}
    return value


def load_seed_rules(
    province: str,
    *,
    path: Path = SEED_RULES_FILE,
    channels: list[ChannelTarget] | None = None,
    owner: str = SEED_OWNER,
) -> list[RuleSpec]:
    """Read and validate the seed rules for `province`; every rule goes to `channels` if given."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RuleValidationError(f"{path}: not valid YAML: {exc}") from None
    entries = raw.get("rules") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise RuleValidationError(f"{path}: expected a top-level 'rules:' list")
    specs = []
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise RuleValidationError(f"{path}: rule #{position} must be a mapping")
        data = {"owner": owner, **_fill(entry, province)}
        if channels is not None and "channels" not in entry:
            data["channels"] = [c.model_dump() for c in channels]
        try:
            specs.append(validate_rule(data))
        except RuleValidationError as exc:
            raise RuleValidationError(f"{path}: rule #{position}: {exc}") from None
    return specs


def install_seed_rules(
    engine: Engine,
    province: str,
    *,
    channels: list[ChannelTarget] | None = None,
    backend: SearchBackend | None = None,
    path: Path = SEED_RULES_FILE,
    now: datetime | None = None,
) -> list[str]:
    """Save the seed rules that do not exist yet (never overwrites staff edits); returns the names added."""
    added = []
    for spec in load_seed_rules(province, path=path, channels=channels):
        if get_rule(engine, spec.name) is None:
            save_rule(engine, spec, backend=backend, now=now)
            added.append(spec.name)
    return added
