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
# Optional free-text fields of a study record: absent, null, "" and whitespace all mean
# "not given", in `train` and `draft` alike.
OPTIONAL_TEXT_FIELDS = ("indication", "comparison")


def clean_optional_fields(data: dict[str, Any], max_chars: int = 200_000) -> str | None:
    """Drop empty optional text fields (None, "", whitespace) from a study record in place;
    return a problem ("E107 ..."/"E108 ...") for a non-string or oversized one, else None."""
    for key in OPTIONAL_TEXT_FIELDS:
        if key not in data:
            continue
        value = data[key]
        if value is None or (isinstance(value, str) and not value.strip()):
            del data[key]
        elif not isinstance(value, str):
            return f"E107 {key!r} must be a string, got {type(value).__name__}"
        elif len(value) > max_chars:
            return f"E108 {key!r} has {len(value):,} characters, over the limit of {max_chars:,}"
    return None


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

    @property
    def sha256(self) -> str:
        """The content hash of what the template renders (every key but ``source``), recorded
        beside ``version`` so an edited template that kept its version is still told apart."""
        import hashlib

        body = {"version": self.version, "system": self.system, "tasks": dict(self.tasks), "image_label": self.image_label,
                "view_labels": dict(self.view_labels), "context": dict(self.context)}
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()

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
        from reportgen.jsonl import check_in_file

        p = check_in_file(path, "prompt template", "E520")
        try:
            text, source = p.read_text(encoding="utf-8"), str(p)
        except UnicodeDecodeError as e:
            raise ReportgenError("E520", f"prompt template {str(p)!r} is not UTF-8 text (byte {e.start})", fix="save it as UTF-8 JSON") from None
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
PROMPT_SHA256: str = default_template().sha256


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


def select_images(study: Study, policy: Any = None) -> Study:
    """``study`` with the images an image policy (reportgen.images.ImagePolicy) keeps, in
    prompt order (frontal first, then lateral); views read from DICOM headers are filled in."""
    if policy is None or not study.images:
        return study
    views = _views(study)
    keep = policy.order(views)
    if keep == list(range(len(study.images))) and tuple(views) == tuple(study.views):
        return study
    from dataclasses import replace

    dropped = len(study.images) - len(keep)
    meta = {**dict(study.meta), "images_dropped": dropped} if dropped else study.meta
    return replace(study, images=tuple(study.images[i] for i in keep), views=tuple(views[i] for i in keep), meta=meta)


def render_messages(study: Study, task: str = "findings", template: PromptTemplate | None = None,
                    policy: Any = None) -> list[dict[str, Any]]:
    """Chat messages for drafting ``task`` ("findings", "impression" or "full") of ``study``;
    with an image ``policy`` only the images it selects, in its order."""
    if task not in TASKS:
        raise ReportgenError("E521", f"unknown drafting task {task!r}", fix=f"use one of {', '.join(TASKS)}")
    t = template or default_template()
    study = select_images(study, policy)
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
