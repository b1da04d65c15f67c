"""Fixtures for the region-checker (open_clip) tests: a tiny random open_clip model BUILT
from a JSON config (no hub, no download), saved as a ``local-dir:`` checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

# A 1-layer ViT (32x32 input, 8x8 patches -> a 4x4 grid) and a 1-layer text tower.
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8, "pool_type": "avg"},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


# Synthetic similarity maps: the patient-left upper zone is the IMAGE RIGHT, upper third.
LEFT_UPPER = (0.75, 0.25)
RIGHT_UPPER = (0.25, 0.25)


def blob(x: float, y: float, sigma: float = 0.05, amp: float = 1.0, noise: float = 0.02, seed: int = 0, grid: int = 128) -> np.ndarray:
    """A Gaussian bump at normalised (x, y) on the analysis grid, plus a little noise."""
    g = (np.arange(grid) + 0.5) / grid
    X, Y = np.meshgrid(g, g)
    m = amp * np.exp(-((X - x) ** 2 + (Y - y) ** 2) / (2 * sigma**2))
    return (m + np.random.default_rng(seed).normal(0, noise, m.shape)).astype(np.float32)


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
    from reportgen.checkers.region.train import save_local_dir

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
    from reportgen.checkers.region.checker import RegionChecker

    return RegionChecker(f"local-dir:{tiny_clip_dir}")


@pytest.fixture(scope="session")
def grounded_examples_path(shared_data) -> Path:
    p = shared_data / "radfact" / "grounded_reporting_examples.json"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p
