"""The bridge's configuration (``bridge.yaml``)::

gateway: http://127.0.0.1:8080
syftbox: {email: do@hospital.example, token_path: token.json}
assets: [fed_01...]            # what bridged jobs run on
purpose: public-health-research
dataset: admissions            # the name jobs resolve (default: the asset's)
operators:                     # data scientist -> the licensed operator's API key
  ds@research.example: {api_key_env: CIVIC_ANALYTICS_KEY}
state_file: bridge-state.json
poll_seconds: 10
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field


class OperatorKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    def key(self) -> str:
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ValueError(f"the environment variable {self.api_key_env} is not set")
        return value


class SyftBoxLogin(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str = Field(pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$")
    token_path: Path | None = None


class BridgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gateway: str
    syftbox: SyftBoxLogin
    assets: list[str] = Field(min_length=1)
    purpose: str = Field(min_length=1)
    dataset: str | None = None
    operators: dict[str, OperatorKey]
    state_file: Path = Path("bridge-state.json")
    poll_seconds: float = Field(default=10.0, gt=0)


def load(path: Path) -> BridgeConfig:
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    config = BridgeConfig.model_validate(data)
    base = path.resolve().parent
    state = config.state_file if config.state_file.is_absolute() else base / config.state_file
    return config.model_copy(update={"state_file": state})
