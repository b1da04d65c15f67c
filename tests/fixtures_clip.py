"""Fixtures for the region-checker (open_clip) tests: a tiny random open_clip model BUILT
from a JSON config (no hub, no download), saved as a ``local-dir:`` checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# A 1-layer ViT (32x32 input, 8x8 patches -> a 4x4 grid) and a 1-layer text tower.
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8, "pool_type": "avg"},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_tiny_config(folder: Path, name: str = "reportgen-tiny-clip", **vision) -> Path:
    cfg = json.loads(json.dumps(TINY_CLIP_CONFIG))
    cfg["vision_cfg"].update(vision)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return path


def build_tiny_clip(folder: Path, *, seed: int = 0, name: str = "reportgen-tiny-clip") -> Path:
    """Config -> random model (seeded) -> local-dir checkpoint in ``folder/model``."""
    torch = pytest.importorskip("torch")
    open_clip = pytest.importorskip("open_clip")
    from checkers.region.train import save_local_dir

    cfg_path = write_tiny_config(folder / "configs", name)
    open_clip.add_model_config(cfg_path)
    torch.manual_seed(seed)
    model = open_clip.create_model(name)
    return save_local_dir(model, json.loads(cfg_path.read_text()), folder / "model")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A local-dir checkpoint of a tiny random open_clip model."""
    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture()
def tiny_region_checker(tiny_clip_dir):
    """A fresh RegionChecker on the tiny model (caches empty)."""
    from checkers.region.checker import RegionChecker

    return RegionChecker(f"local-dir:{tiny_clip_dir}")


@pytest.fixture(scope="session")
def grounded_examples_path(shared_data) -> Path:
    p = shared_data / "radfact" / "grounded_reporting_examples.json"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p
