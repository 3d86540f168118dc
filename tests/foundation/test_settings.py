"""Settings: file + environment, clear errors naming key and file, homes that never interfere."""

from __future__ import annotations

from pathlib import Path

import pytest

from duluan.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("DULUAN_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_put_every_store_under_home(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path / "h")
    assert s.timezone == "Asia/Ho_Chi_Minh"
    assert s.web.host == "127.0.0.1" and s.web.port == 8000
    for path in (s.index_dir, s.models_dir, s.crawl_state_dir, s.digests_dir):
        assert path.is_relative_to(tmp_path / "h")
    assert s.db_url == f"sqlite:///{(tmp_path / 'h' / 'duluan.db').resolve()}"


def test_toml_file_then_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "duluan.toml").write_text('home = "x"\n[web]\nport = 8100\n[province]\nname = "Bình Phước"\n')
    assert load_settings().web.port == 8100
    assert load_settings().province.name == "Bình Phước"
    monkeypatch.setenv("DULUAN_WEB__PORT", "8200")
    monkeypatch.setenv("DULUAN_HOME", str(tmp_path / "y"))
    s = load_settings()
    assert s.web.port == 8200
    assert s.home == tmp_path / "y"


def test_invalid_value_names_key_file_and_env_var(tmp_path: Path) -> None:
    (tmp_path / "duluan.toml").write_text("[web]\nport = 99999\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "web.port" in message and "duluan.toml" in message and "DULUAN_WEB__PORT" in message


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "duluan.toml").write_text("[web]\nprot = 8000\n")
    with pytest.raises(ConfigError, match=r"web\.prot"):
        load_settings()


def test_unknown_time_zone_and_bad_digest_time(tmp_path: Path) -> None:
    (tmp_path / "duluan.toml").write_text('timezone = "Asia/Hanoi_City"\n[alerts]\ndigest_time = "25:00"\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "timezone" in str(info.value) and "alerts.digest_time" in str(info.value)


def test_broken_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "duluan.toml").write_text("[web\nport = 1\n")
    with pytest.raises(ConfigError, match=r"duluan\.toml"):
        load_settings()


def test_missing_config_file_named_by_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DULUAN_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_settings()


def test_secrets_are_not_printed(tmp_path: Path) -> None:
    (tmp_path / "duluan.toml").write_text('[web]\nsecret_key = "hunter2-very-secret"\n')
    s = load_settings()
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    assert s.web.secret_key.get_secret_value() == "hunter2-very-secret"
