"""One settings object for the service and the command line, fed by LINDUNG_* variables.

Nothing reads the environment on import: `Settings()` is built once at start-up and passed down;
command-line options override it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.deadline import DEADLINE_TEXT, deadline_is_sound

DEVELOPMENT_KEY = "development-only-pseudonym-key"
SAMPLE_REGISTRY = ("registry", "sample.csv")


def bundled(*parts: str) -> Path:
    """A file shipped in the rules package (the default pack, the sample registry)."""
    return Path(str(resources.files("rules").joinpath(*parts)))


def _deadline(hours: float) -> float:
    if not deadline_is_sound(hours):
        raise ValueError(DEADLINE_TEXT)
    return hours


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LINDUNG_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    rule_pack: Path = bundled("default")
    registry: Path = bundled(*SAMPLE_REGISTRY)
    pseudonym_key: SecretStr = SecretStr(DEVELOPMENT_KEY)
    rule_backend: Literal["durable", "reference", "columnar"] = "durable"
    model_dir: Path = Path("var/model")
    review_capacity: float = Field(
        default=0.05, gt=0, lt=1
    )  # share of departures reviewers can handle
    high_capacity: float = Field(
        default=0.01, gt=0, lt=1
    )  # share they can review first (high tier)
    training_rows: int = Field(default=300_000, ge=10_000)  # reference rows for the first model
    model_sha256: str | None = None  # pin the model file's SHA-256 (detects a swapped model)
    database_url: str = "sqlite:///var/lindung.db"  # or postgresql+psycopg://host/db
    pack_library: Path = Path("var/packs")  # more rule packs an admin may activate, one per folder
    model_library: Path = Path("var/models")  # more models an admin may activate, one per folder
    # agency -> hours from screening to the referral's deadline (the pack's, unless set here)
    referral_hours: dict[str, Annotated[float, AfterValidator(_deadline)]] = Field(
        default_factory=dict
    )
    max_request_bytes: int = Field(default=4_000_000, ge=10_000)  # larger bodies get 413
    job_dir: Path = Path("var/jobs")  # analysts' rescore jobs: uploads, outputs, reports
    max_upload_bytes: int = Field(default=4_000_000_000, ge=10_000)  # a rescore job's file

    @model_validator(mode="after")
    def _no_placeholders_in_production(self) -> Settings:
        if self.high_capacity > self.review_capacity:
            raise ValueError("LINDUNG_HIGH_CAPACITY cannot exceed LINDUNG_REVIEW_CAPACITY")
        if self.environment == "development":
            return self
        key = self.pseudonym_key.get_secret_value()
        if key == DEVELOPMENT_KEY or len(key) < 32:
            raise ValueError(
                "LINDUNG_PSEUDONYM_KEY must be set to a secret of at least 32 characters "
                "outside development"
            )
        if self.registry.resolve() == bundled(*SAMPLE_REGISTRY).resolve():
            raise ValueError(
                "LINDUNG_REGISTRY must point at the ministry's registry outside development "
                "(the bundled sample is fictional)"
            )
        return self
