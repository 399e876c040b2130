"""Shared fixtures: a private copy of the demo configuration over freshly generated extracts."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

# Throw-away keys for this test session only (never written anywhere): the master and run
# folders are encrypted at rest and the analyst mart's tokens are keyed, as in production.
os.environ.setdefault("MDM_MASTER_KEY", secrets.token_hex(32))
os.environ.setdefault("MDM_TOKEN_KEY", secrets.token_hex(32))
DEMO_CONFIG = REPO / "data" / "config"


@dataclass
class Workspace:
    root: Path
    config_path: Path
    sources_path: Path
    sample_dir: Path

    @property
    def master_dir(self) -> Path:
        return self.root / "master"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def edit_sources(self, **changes: object) -> None:
        data = yaml.safe_load(self.sources_path.read_text(encoding="utf-8"))
        data.update(changes)
        self.sources_path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def make_workspace(root: Path, persons: int = 300, seed: int = 7, generate: bool = True) -> Workspace:
    """A run config, sources file and generated extracts, all under ``root``."""
    from pipelines.generator import generate as run_generate

    root.mkdir(parents=True, exist_ok=True)
    sample = root / "sample"
    if generate:
        run_generate(persons=persons, out_dir=sample, seed=seed)
    sources = yaml.safe_load((DEMO_CONFIG / "sources.yaml").read_text(encoding="utf-8"))
    sources["base_dir"] = str(sample)
    sources_path = root / "sources.yaml"
    sources_path.write_text(yaml.safe_dump(sources, allow_unicode=True), encoding="utf-8")
    config = yaml.safe_load((DEMO_CONFIG / "demo.yaml").read_text(encoding="utf-8"))
    config["sources"] = str(sources_path)
    config["paths"] = {"sample": str(sample), "runs": str(root / "runs"), "master": str(root / "master"),
                       "state": str(root / "state")}
    config["demo"] = None
    config_path = root / "run.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return Workspace(root, config_path, sources_path, sample)


@pytest.fixture(scope="session")
def generated_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated sample shared by the tests that only read it."""
    from pipelines.generator import generate as run_generate

    out = tmp_path_factory.mktemp("sample")
    run_generate(persons=400, out_dir=out, seed=11)
    return out


@pytest.fixture()
def workspace(tmp_path: Path, generated_sample: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws", generate=False)
    shutil.copytree(generated_sample, ws.sample_dir)
    return ws
