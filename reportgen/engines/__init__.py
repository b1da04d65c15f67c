"""Execution engines for the batch stages (drafting, checking).

``local`` is the single-process path every command has always taken; ``ray`` spreads the
same stages over Ray Data actors on one machine or a cluster (``pip install
'reportgen-cxr[ray]'``). Both write the same files: a stage's output does not depend on the
engine (see docs/scale.md). Nothing here imports ray until the ray engine is used.
"""

from __future__ import annotations

ENGINES = ("local", "ray")

__all__ = ["ENGINES"]
