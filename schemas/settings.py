"""The run configuration that ``mdm run --config FILE`` reads.

Every path is relative to the config file. Sub-configs of the matcher and survivorship
are validated by their own models (``schemas.matching``, ``schemas.survivorship``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mdm.errors import ConfigError
from schemas.sources import SourcesFile, format_validation_error, load_yaml

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "data" / "config" / "demo.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsModel(_Strict):
    sample: str = "../sample"
    runs: str = "../runs"
    master: str = "../master"
    mart: str = "../mart"
    state: str = "../state"


class SecurityModel(_Strict):
    encrypt_at_rest: bool = Field(
        True, description="encrypt the raw master and the run folders' Parquet (key in master_key_env)"
    )
    master_key_env: str = Field("MDM_MASTER_KEY", description="environment variable holding the encryption key")
    token_key_env: str = Field("MDM_TOKEN_KEY", description="environment variable holding the analyst-token key")


class DemoModel(_Strict):
    persons: int = Field(10000, ge=1)
    seed: int = 20261123


_MEMORY = r"^\s*\d+(\.\d+)?\s*(%|[KMGT]i?B)\s*$"


class ResourcesModel(_Strict):
    """What the run may take of the machine (the matcher's SQL engine runs inside the process)."""

    match_engine_memory: str = Field(
        "25%",
        pattern=_MEMORY,
        description=(
            "cap on the match engine's (DuckDB's) buffers: a size such as '6GB' or a share of the machine's RAM "
            "such as '25%'; joins and aggregates beyond it spill to the run folder. DuckDB's own default (80% of "
            "RAM on top of what the run already holds) lets a large run meet the kernel's out-of-memory killer"
        ),
    )
    match_engine_threads: int | None = Field(None, ge=1, description="engine threads (default: one per core)")
    extract_threads: int = Field(
        2,
        ge=1,
        description=(
            "sources extracted at once (reading, checks and landing; their data-quality gates take turns). "
            "Each holds its source's records in memory while it is read"
        ),
    )


class RunConfigModel(_Strict):
    name: str = "default"
    sources: str = Field(..., description="path of the sources file")
    paths: PathsModel = Field(default_factory=PathsModel)
    demo: DemoModel | None = None
    keep_versions: int = Field(7, ge=1)
    matching: dict[str, Any] = Field(default_factory=dict, description="overrides of the matcher defaults")
    survivorship: dict[str, Any] = Field(default_factory=dict, description="overrides of the survivorship defaults")
    masking: dict[str, Any] = Field(default_factory=dict, description="overrides of the masking rules")
    ids: dict[str, Any] = Field(default_factory=dict, description="overrides of the ID rules (IdRules)")
    security: SecurityModel = Field(default_factory=lambda: SecurityModel.model_validate({}))
    resources: ResourcesModel = Field(default_factory=lambda: ResourcesModel.model_validate({}))


@dataclass(frozen=True)
class RunConfig:
    """A loaded, validated run configuration with absolute paths."""

    path: Path
    model: RunConfigModel
    sources: SourcesFile
    sources_path: Path
    sources_base: Path
    sample_dir: Path
    runs_dir: Path
    master_dir: Path
    mart_dir: Path
    state_dir: Path

    def master_key(self) -> bytes | None:
        """The at-rest encryption key (None when encryption is off); a missing key is a clear error."""
        if not self.model.security.encrypt_at_rest:
            return None
        from mdm.crypto import load_key

        return load_key(self.model.security.master_key_env, required=True)

    def token_key(self) -> bytes:
        from mdm.crypto import load_key

        key = load_key(self.model.security.token_key_env, required=True)
        assert key is not None
        return key


def _resolve(base: Path, p: str) -> Path:
    return (base / p).resolve()


def load_run_config(path: Path | str | None = None) -> RunConfig:
    """Load and validate a run config and the sources file it names; errors name the field and the fix."""
    cfg_path = Path(path) if path is not None else DEFAULT_CONFIG
    cfg_path = cfg_path.resolve()
    data = load_yaml(cfg_path)
    try:
        model = RunConfigModel.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(cfg_path, e)) from e
    base = cfg_path.parent
    sources_path = _resolve(base, model.sources)
    sources_data = load_yaml(sources_path)
    try:
        sources = SourcesFile.model_validate(sources_data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(sources_path, e)) from e
    return RunConfig(
        path=cfg_path,
        model=model,
        sources=sources,
        sources_path=sources_path,
        sources_base=_resolve(sources_path.parent, sources.base_dir),
        sample_dir=_resolve(base, model.paths.sample),
        runs_dir=_resolve(base, model.paths.runs),
        master_dir=_resolve(base, model.paths.master),
        mart_dir=_resolve(base, model.paths.mart),
        state_dir=_resolve(base, model.paths.state),
    )
