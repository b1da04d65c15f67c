"""Drafting prompts: a versioned template (``prompts/draft.json``) -> chat messages.

:func:`render_messages` gives OpenAI-style chat messages, the SAME for every backend, so a
draft never depends on how it was served::

    [{"role": "system", "content": "You are an experienced radiologist..."},
     {"role": "user", "content": [
         {"type": "text", "text": "Image 1 (frontal, PA view):"},
         {"type": "image", "image": "/data/s1/frontal.dcm"},
         {"type": "text", "text": "Image 2 (lateral view):"},
         {"type": "image", "image": "/data/s1/lateral.dcm"},
         {"type": "text", "text": "Indication: cough.\\nWrite the FINDINGS section ..."}]}]

The ``hf`` backend renders them with the model's own chat template; the ``vllm`` backend
sends them to the server with each image part turned into a base64 data URL, and the
server applies the same chat template. All images of a study (frontal and lateral views)
go into one prompt. ``PROMPT_VERSION`` is recorded with every draft and adapter.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from reportgen.errors import ReportgenError
from reportgen.types import Study

TASKS = ("findings", "impression", "full")
DEFAULT_TEMPLATE = "draft.json"


@dataclass(frozen=True)
class PromptTemplate:
    """A drafting template read from a JSON data file (see ``prompts/draft.json``)."""

    version: str
    system: str
    tasks: Mapping[str, str]
    image_label: str = "Image {n} ({view}):"
    view_labels: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or "prompt template"
        if not isinstance(self.version, str) or not self.version.strip():
            raise ReportgenError("E520", f"{where}: 'version' must be a non-empty string", fix="add a version string")
        missing = [t for t in TASKS if not isinstance(self.tasks.get(t), str)]
        if missing:
            raise ReportgenError("E520", f"{where}: no template for task(s) {', '.join(missing)}", fix=f"give 'tasks' keys {', '.join(TASKS)}")
        for slot in ("indication", "comparison"):
            if slot in self.context and "{" + slot + "}" not in self.context[slot]:
                raise ReportgenError("E520", f"{where}: context line {slot!r} lacks the slot {{{slot}}}", fix=f"write e.g. '{slot.title()}: {{{slot}}}'")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "") -> "PromptTemplate":
        try:
            return cls(
                version=d["version"], system=d.get("system", ""), tasks=dict(d["tasks"]),
                image_label=d.get("image_label", "Image {n} ({view}):"), view_labels=dict(d.get("view_labels", {})),
                context=dict(d.get("context", {})), source=source,
            )
        except (KeyError, TypeError) as e:
            raise ReportgenError("E520", f"{source or 'prompt template'}: missing or malformed key {e}", fix="compare with prompts/draft.json") from e

    def view_label(self, view: str | None) -> str:
        if not view:
            return self.view_labels.get("unknown", "view not given")
        return self.view_labels.get(view.strip().upper(), f"{view} view")


def load_template(path: str | os.PathLike[str] | None = None) -> PromptTemplate:
    """The packaged ``draft.json`` template, or a user's JSON file with the same keys."""
    if path is None:
        from reportgen import prompts

        text, source = prompts.load(DEFAULT_TEMPLATE), f"prompts/{DEFAULT_TEMPLATE}"
    else:
        p = Path(path)
        if not p.is_file():
            raise ReportgenError("E520", f"prompt template {str(p)!r} does not exist", fix="check the path")
        text, source = p.read_text(encoding="utf-8"), str(p)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportgenError("E520", f"{source}: malformed JSON ({e.msg} at line {e.lineno})", fix="fix the template file") from e
    return PromptTemplate.from_dict(data, source)


_DEFAULT: PromptTemplate | None = None


def default_template() -> PromptTemplate:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_template()
    return _DEFAULT


PROMPT_VERSION: str = default_template().version


def _views(study: Study) -> list[str | None]:
    views: list[str | None] = list(study.views) if study.views else [None] * len(study.images)
    for i, (img, view) in enumerate(zip(study.images, views)):
        if view is None:
            from reportgen.images import is_dicom

            if is_dicom(img):
                try:
                    from reportgen.images import view_from_dicom

                    views[i] = view_from_dicom(img)
                except ReportgenError:
                    pass  # an unreadable file fails with its own error when the image loads
    return views


def render_messages(study: Study, task: str = "findings", template: PromptTemplate | None = None) -> list[dict[str, Any]]:
    """Chat messages for drafting ``task`` ("findings", "impression" or "full") of ``study``."""
    if task not in TASKS:
        raise ReportgenError("E521", f"unknown drafting task {task!r}", fix=f"use one of {', '.join(TASKS)}")
    t = template or default_template()
    parts: list[dict[str, Any]] = []
    for n, (img, view) in enumerate(zip(study.images, _views(study)), start=1):
        parts.append({"type": "text", "text": t.image_label.format(n=n, view=t.view_label(view))})
        parts.append({"type": "image", "image": str(img)})
    lines = []
    for slot in ("indication", "comparison", "repair"):
        # "repair": the flagged sentences of an earlier draft (reportgen run --repair, prompts/repair.json)
        value = getattr(study, slot) if slot != "repair" else (study.meta or {}).get("repair")
        if value and str(value).strip() and slot in t.context:
            lines.append(t.context[slot].format(**{slot: str(value).strip()}))
    lines.append(t.tasks[task].format(n_images=len(study.images)))
    text = "\n".join(lines)
    parts.append({"type": "text", "text": ("\n" + text) if study.images else text})
    messages: list[dict[str, Any]] = []
    if t.system:
        messages.append({"role": "system", "content": t.system})
    messages.append({"role": "user", "content": parts})
    return messages


def image_paths(messages: list[dict[str, Any]]) -> list[str]:
    """The image paths of rendered messages, in prompt order."""
    return [p["image"] for m in messages if isinstance(m.get("content"), list) for p in m["content"]
            if p.get("type") == "image" and p.get("image")]


def without_image_paths(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with each image part reduced to ``{"type": "image"}`` (for a processor
    whose chat template should only place the image tokens; pixels are passed separately)."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = [{"type": "image"} if p.get("type") == "image" else dict(p) for p in content]
        out.append({**m, "content": content})
    return out
