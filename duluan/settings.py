"""One settings object for the whole service.

Sources, in increasing priority: defaults here → `duluan.toml` (in the working directory, or the
file named by `DULUAN_CONFIG`) → `DULUAN_*` environment variables (nested keys with `__`, e.g.
`DULUAN_WEB__PORT=8080`). All embedded state lives under `home` so two homes never interfere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = "duluan.toml"


class ConfigError(Exception):
    """Invalid configuration: the message names the key and the file, and says how to fix it."""


class _Section(BaseModel):
    """A settings section: unknown keys are typos, so they are errors."""

    model_config = ConfigDict(extra="forbid")


class WebSettings(_Section):
    host: str = Field(
        "127.0.0.1", description="Bind address; only loopback unless you put it behind a proxy."
    )
    port: int = Field(8000, ge=1, le=65535, description="Port of the web app and API.")
    secret_key: SecretStr = Field(
        SecretStr(""), description="Signs session cookies; generated under home if empty."
    )


class CrawlSettings(_Section):
    user_agent: str = Field("DuluanBot/0.1 (+IOC press monitoring)", description="Sent with every request.")
    obey_robots: bool = Field(True, description="Obey robots.txt.")
    concurrency_per_domain: int = Field(
        2, ge=1, le=32, description="Parallel requests per site (politeness)."
    )
    download_delay_s: float = Field(1.0, ge=0.0, description="Pause between requests to one site.")
    max_page_bytes: int = Field(5_000_000, ge=10_000, description="Pages larger than this are dropped.")
    min_body_chars: int = Field(200, ge=0, description="Pages with a shorter main text are not documents.")
    timeout_s: float = Field(30.0, gt=0, description="Per request.")
    sources_seed: Path | None = Field(
        None, description="YAML file of sources to seed; default: the shipped list."
    )
    facebook_graph_url: str = Field("https://graph.facebook.com/v19.0", description="Graph API base URL.")
    facebook_page_token: SecretStr = Field(
        SecretStr(""), description="Page access token for public page posts."
    )
    youtube_api_url: str = Field(
        "https://www.googleapis.com/youtube/v3", description="YouTube Data API v3 base."
    )
    youtube_api_key: SecretStr = Field(SecretStr(""), description="YouTube Data API key.")


class NlpSettings(_Section):
    models_dir: Path | None = Field(
        None, description="Models in use; default: <home>/models, then shipped ones."
    )
    watchlist_path: Path | None = Field(
        None,
        description="Analysts' watchlist YAML (officials, organisations; format of nlp/gazetteer.yaml)"
        " added to the entity gazetteer.",
    )
    strong_models_dir: Path | None = Field(
        None,
        description="Fine-tuned strong models blended with the linear ones where present"
        " (`<dir>/<task>/strong.json`, made by `python -m nlp.transformer_model --out <dir>/<task>`);"
        " unset: linear models only (fastest).",
    )
    strong_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="Weight of the strong model's probabilities in the blend."
    )
    strong_for_news: bool = Field(
        False,
        description="Blend the strong models into news articles too (by default only social and forum"
        " posts, what they were fine-tuned on; ~120 ms more CPU per article).",
    )


class IndexSettings(_Section):
    backend: Literal["tantivy", "elasticsearch"] = Field(
        "tantivy",
        description="tantivy: embedded under <home>/index; elasticsearch: the cluster at elasticsearch_url.",
    )
    elasticsearch_url: str = Field(
        "http://127.0.0.1:9200",
        pattern=r"^https?://",
        description="Cluster URL (user:password@ inside the URL for basic auth).",
    )
    elasticsearch_index: str = Field(
        "duluan", pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Alias; backing indices are <alias>-000001…"
    )
    elasticsearch_shards: int = Field(1, ge=1, description="Primary shards per backing index.")
    elasticsearch_replicas: int = Field(0, ge=0, description="0 on one node; 1+ on a cluster.")
    elasticsearch_timeout_s: float = Field(60.0, gt=0, description="Per request to the cluster.")
    elasticsearch_rollover_max_age: str = Field(
        "30d",
        pattern=r"^[1-9][0-9]*[dh]$",
        description="Daily housekeeping starts a new backing index once the write index is this old "
        "(days `30d` or hours `12h`).",
    )
    elasticsearch_rollover_max_docs: int = Field(
        5_000_000, ge=1, description="...or once the write index holds this many documents."
    )


class SmtpSettings(_Section):
    """The mail relay alerts and digests go out through; e-mail is off while `host` is empty."""

    host: str = Field("", description="SMTP server; empty: e-mail not configured (messages wait).")
    port: int = Field(587, ge=1, le=65535, description="587 for STARTTLS, 465 for implicit TLS.")
    username: str = Field("", description="Login; empty: no AUTH.")
    password: SecretStr = Field(SecretStr(""), description="SMTP password.")
    starttls: bool = Field(
        True, description="Upgrade with STARTTLS (port 587); false only for a local relay."
    )
    implicit_tls: bool = Field(False, description="TLS from the first byte (port 465) instead of STARTTLS.")
    verify_tls: bool = Field(True, description="Check the relay's certificate.")
    ca_file: Path | None = Field(None, description="A private CA for an internal relay.")
    sender: str = Field("duluan@localhost", pattern=r"^[^@\s]+@[^@\s]+$", description="From address.")
    sender_name: str = Field("Duluan – Trung tâm IOC", description="Display name of the sender.")
    timeout_s: float = Field(20.0, gt=0, description="Per SMTP session.")


class WebhookSecretSettings(_Section):
    secret: SecretStr = Field(SecretStr(""), description="HMAC-SHA256 key; empty: webhooks not configured.")
    timeout_s: float = Field(10.0, gt=0, description="Per webhook request.")


class TelegramSettings(_Section):
    bot_token: SecretStr = Field(
        SecretStr(""), description="From @BotFather; empty: Telegram not configured."
    )
    api_base: str = Field("https://api.telegram.org", description="Bot API base URL.")
    timeout_s: float = Field(10.0, gt=0, description="Per Bot API request.")


class ZaloSettings(_Section):
    oa_access_token: SecretStr = Field(
        SecretStr(""), description="Zalo Official Account access token; empty: Zalo not configured."
    )
    api_url: str = Field("https://openapi.zalo.me/v3.0/oa/message/cs", description="OA message API endpoint.")
    timeout_s: float = Field(10.0, gt=0, description="Per OA API request.")


class AlertSettings(_Section):
    rule_interval_minutes: int = Field(5, ge=1, description="How often alert rules run.")
    digest_time: str = Field("07:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, local time.")
    ui_base_url: str = Field("http://127.0.0.1:8000", description="Links in alerts and digests point here.")
    rule_interval_seconds: int | None = Field(
        None, ge=10, description="Overrides rule_interval_minutes with a shorter cycle (benchmarks, demos)."
    )
    delivery_interval_seconds: int = Field(60, ge=5, description="How often the outbox sender runs.")
    digest_groups: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Digest recipient groups (nhóm nhận bản tin): group name → e-mail addresses.",
    )
    digest_pdf: bool = Field(True, description="Also render the digest as PDF (archived and attached).")
    state_retention_days: int = Field(14, ge=7, description="Housekeeping forgets per-key rule state older.")
    scheduler_lease_seconds: int = Field(
        60, ge=5, description="A scheduler that stops renewing its lease this long is replaced by another."
    )
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    webhook: WebhookSecretSettings = Field(default_factory=WebhookSecretSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    zalo: ZaloSettings = Field(default_factory=ZaloSettings)

    @field_validator("digest_groups")
    @classmethod
    def _addresses(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        bad = [f"{group}: {a!r}" for group, items in value.items() for a in items if not _EMAIL.match(a)]
        if bad:
            raise ValueError(f"not e-mail addresses: {', '.join(bad)}")
        return value


_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


WorkerRole = Literal["crawl", "alerts"]


def _all_worker_roles() -> list[WorkerRole]:
    return ["crawl", "alerts"]


class WorkerSettings(_Section):
    """`duluan worker`: several processes, on one or more machines, share the sources through leases."""

    roles: list[WorkerRole] = Field(
        default_factory=_all_worker_roles,
        description="crawl: claim due sources and crawl them (fetch, extract, enrich, index); alerts: rules,"
        " outbox, digest and housekeeping behind the one scheduler lease.",
    )
    lease_seconds: float = Field(
        120.0,
        ge=2,
        description="A worker that stops renewing its source leases this long (killed, hung) loses them"
        " to another.",
    )
    poll_seconds: float = Field(10.0, gt=0, description="How often an idle worker looks for due sources.")
    sources_per_crawl: int = Field(
        4, ge=1, le=64, description="Due sources claimed at once and crawled together in one child process."
    )
    crawl_timeout_s: float = Field(
        1800.0, gt=0, description="A crawl child running longer is stopped and its sources released."
    )


class ProvinceSettings(_Section):
    """The province we monitor (tỉnh theo dõi). Old names before the 2025-07-01 merger count too."""

    name: str = Field("Đồng Nai", description="The monitored province (its name since 2025-07-01).")
    aliases: list[str] = Field(
        default_factory=lambda: ["Bình Phước", "Đồng Xoài"],
        description="Other names that count as the province: merged provinces, the capital, districts.",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DULUAN_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(Path("data"), description="Where every embedded store lives.")
    timezone: str = Field("Asia/Ho_Chi_Minh", description="Local time of dates, digests and schedules.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite at <home>/duluan.db.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severe level logged."
    )
    log_json: bool = Field(False, description="One JSON object per log line (for log shippers).")
    web: WebSettings = Field(default_factory=WebSettings)
    crawl: CrawlSettings = Field(default_factory=CrawlSettings)
    nlp: NlpSettings = Field(default_factory=NlpSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    province: ProvinceSettings = Field(default_factory=ProvinceSettings)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as Asia/Ho_Chi_Minh"
            ) from exc
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("DULUAN_CONFIG", DEFAULT_CONFIG_FILE))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    # Derived paths: everything under home.
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'duluan.db').resolve()}"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def models_dir(self) -> Path:
        return self.nlp.models_dir or self.home / "models"

    @property
    def crawl_state_dir(self) -> Path:
        return self.home / "crawl"

    @property
    def digests_dir(self) -> Path:
        return self.home / "digests"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_settings(**overrides: Any) -> Settings:
    """Load settings, turning validation errors into one `ConfigError` that names key and file."""
    config_file = os.environ.get("DULUAN_CONFIG", DEFAULT_CONFIG_FILE)
    if "DULUAN_CONFIG" in os.environ and not Path(config_file).is_file():
        raise ConfigError(
            f"DULUAN_CONFIG points to {config_file!r}, which does not exist; fix the path or unset it."
        )
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            env_name = "DULUAN_" + "__".join(str(p) for p in err["loc"]).upper()
            problems.append(f"  {key}: {err['msg']} (set in {config_file} or {env_name})")
        raise ConfigError("invalid configuration:\n" + "\n".join(problems)) from None
    except Exception as exc:  # a TOML syntax error surfaces as a decoder error
        raise ConfigError(f"cannot read {config_file}: {exc}") from None
