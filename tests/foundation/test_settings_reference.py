"""The README's configuration table is generated from the settings model and stays equal to it;
`duluan config show` prints effective values without secrets."""

from __future__ import annotations

import json
from pathlib import Path

from duluan.settings import Settings
from duluan.settings_reference import reference_rows, reference_table
from tests.foundation.conftest import REPO, run_duluan


def test_readme_table_is_the_generated_reference() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert reference_table() in readme, "run `duluan config reference --update-readme README.md`"


def test_every_leaf_setting_is_documented_with_its_variable() -> None:
    rows = {key: (env, meaning) for key, env, _, meaning in reference_rows()}
    assert rows["alerts.smtp.password"][0] == "DULUAN_ALERTS__SMTP__PASSWORD"
    assert rows["index.backend"][0] == "DULUAN_INDEX__BACKEND"
    assert all(meaning for _, meaning in rows.values()), [k for k, (_, m) in rows.items() if not m]
    assert set(Settings.model_fields) <= {key.split(".")[0] for key in rows}


def test_config_show_masks_secrets(home: Path) -> None:
    result = run_duluan(
        "config",
        "show",
        home=home,
        DULUAN_ALERTS__SMTP__PASSWORD="hunter2-smtp",
        DULUAN_DATABASE_URL="postgresql://duluan:pg-s3cret@127.0.0.1/duluan",
        DULUAN_WEB__PORT="8123",
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2-smtp" not in result.stdout and "pg-s3cret" not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["web"]["port"] == 8123
    assert shown["alerts"]["smtp"]["password"] == "********"
    assert shown["home"] == str(home)
