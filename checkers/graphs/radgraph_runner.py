"""The radgraph model in an interpreter of its own (``REPORTGEN_RADGRAPH_PYTHON``): this
file is loaded THERE by reportgen/sideproc/serve.py, with only the standard library and the
radgraph package.

radgraph's bundled allennlp calls ``tokenizer.encode_plus``, which transformers 5 removed,
so the model loads only beside transformers 4; reportgen's environment has transformers 5.
``RadGraphExtractor`` (radgraph_backend.py) runs it there, one JSON object per line:

    first   {"options": {"model_type": "radgraph-xl", ...}}
            -> {"ready": true, "radgraph": "0.1.18", "transformers": "4.x"}
    then    {"texts": [...]} -> {"annotations": {"0": {...}, ...}} (the package's own answer)
"""

from __future__ import annotations

from typing import Any


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def start(hello: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import radgraph

    return radgraph.RadGraph(**hello["options"]), {"radgraph": _version("radgraph"), "transformers": _version("transformers")}


def handle(model: Any, request: dict[str, Any]) -> dict[str, Any]:
    return {"annotations": model(request["texts"])}
