"""Rendered chat messages -> model inputs, shared by training and the ``hf`` backend so
a prompt is tokenized the same way when an adapter is trained and when it drafts.

The model's own chat template places the image tokens; pixels come from
:func:`reportgen.images.load_image` (RGB), the same pixels the ``vllm`` backend sends.
"""

from __future__ import annotations

from typing import Any, Sequence

from reportgen.errors import ReportgenError
from reportgen.prompting import image_paths, without_image_paths


def _apply(processor, messages, family, **kw) -> str:
    template = getattr(family, "chat_template", None)
    if template:
        kw["chat_template"] = template
    return processor.apply_chat_template(messages, tokenize=False, **kw)


def prompt_text(processor, messages: list[dict[str, Any]], family: Any = None) -> str:
    """The chat-template text of ``messages`` ending with the assistant turn's opening
    (the family's template override from reportgen/data/models.json when it has one)."""
    try:
        return _apply(processor, without_image_paths(messages), family, add_generation_prompt=True)
    except (ValueError, AttributeError) as e:  # no chat template, or one that rejects the roles
        raise ReportgenError(
            "E509", f"the model's processor cannot render chat messages: {e}",
            fix="use an instruct/chat model whose processor has a chat_template",
        ) from e


def conversation_text(processor, messages: list[dict[str, Any]], answer: str, family: Any = None) -> tuple[str, str]:
    """(prompt, target): the prompt as :func:`prompt_text` and the answer as the template
    writes the assistant turn (e.g. ``"...report<|im_end|>\n"``)."""
    prompt = prompt_text(processor, messages, family)
    full_msgs = without_image_paths(messages) + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    try:
        full = _apply(processor, full_msgs, family, add_generation_prompt=False)
    except (ValueError, AttributeError):
        full = None
    if full is not None and full.startswith(prompt) and answer in full[len(prompt):]:
        return prompt, full[len(prompt):]
    return prompt, answer


def stop_token_ids(processor, family: Any = None, model: Any = None) -> list[int]:
    """Token ids that end a draft: the family's stop tokens (models.json), the tokenizer's
    EOS and the model's generation_config.eos_token_id, those that exist."""
    tok = getattr(processor, "tokenizer", processor)
    ids: list[int] = []
    for t in getattr(family, "stop_tokens", ()) or ():
        i = tok.convert_tokens_to_ids(t)
        if isinstance(i, int) and i != getattr(tok, "unk_token_id", None) and i >= 0:
            ids.append(i)
    if tok.eos_token_id is not None:
        ids.append(int(tok.eos_token_id))
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for i in (eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else []):
        ids.append(int(i))
    return list(dict.fromkeys(ids))


def load_images(messages: list[dict[str, Any]], policy: Any = None) -> list:
    """The prompt's images as RGB PIL images, in prompt order, resized by the image
    ``policy`` (reportgen.images.ImagePolicy; default: DEFAULT_POLICY)."""
    from reportgen.images import DEFAULT_POLICY, load_image

    policy = policy or DEFAULT_POLICY
    return [policy.fit(load_image(p)).convert("RGB") for p in image_paths(messages)]


def encode(processor, texts: Sequence[str], images: Sequence[Sequence[Any]], *, padding_side: str = "left") -> dict:
    """Tokenize prompts with their images (one list of images per prompt) as tensors.

    Left padding for generation (every prompt ends where generation starts)."""
    tok = getattr(processor, "tokenizer", processor)
    old = getattr(tok, "padding_side", None)
    tok.padding_side = padding_side
    try:
        kwargs: dict[str, Any] = {"text": list(texts), "return_tensors": "pt", "padding": True}
        if any(len(i) for i in images):
            kwargs["images"] = [list(i) for i in images]
        out = dict(processor(**kwargs))
        out.pop("labels", None)  # PaliGemma's processor makes its own; training sets them
        return out
    finally:
        if old is not None:
            tok.padding_side = old
