"""Fixtures for the vlm tests: a tiny Qwen2-VL built from configs, a tiny manifest with
PNG images, and a LoRA adapter trained on it (see tests/tiny_models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory) -> Path:
    """A saved tiny Qwen2-VL (model, processor, tokenizer, chat template), float32."""
    from tests.tiny_models import build_tiny_qwen2vl

    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny_qwen2vl"))


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory) -> Path:
    """manifest.jsonl of 6 studies ``{"id","images","views","indication"?,"report"}`` with
    small PNGs (absolute paths); study s0 has a frontal and a lateral image."""
    from tests.tiny_models import write_tiny_manifest

    return write_tiny_manifest(tmp_path_factory.mktemp("tiny_manifest"))


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_vlm_dir, tiny_manifest, tmp_path_factory) -> Path:
    """A rank-8 LoRA adapter (language-model modules only) trained on ``tiny_manifest``
    until its greedy findings draft of study s0 is s0's report, unlike the base model's."""
    from tests.tiny_models import build_tiny_adapter

    return build_tiny_adapter(tiny_vlm_dir, tmp_path_factory.mktemp("tiny_adapter"), tiny_manifest)
