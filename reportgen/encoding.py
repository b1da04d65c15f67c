"""Rendered chat messages -> model inputs, shared by training and the ``hf`` backend so
a prompt is tokenized the same way when an adapter is trained and when it drafts.

The model's own chat template places the image tokens; pixels come from
:func:`reportgen.images.load_image` (RGB), the same pixels the ``vllm`` backend sends.
"""

from __future__ import annotations

from typing import Any, Sequence

from reportgen.errors import ReportgenError
from reportgen.prompting import image_paths, without_image_paths


def prompt_text(processor, messages: list[dict[str, Any]]) -> str:
    """The chat-template text of ``messages`` ending with the assistant turn's opening."""
    try:
        return processor.apply_chat_template(without_image_paths(messages), tokenize=False, add_generation_prompt=True)
    except (ValueError, AttributeError) as e:  # no chat template, or one that rejects the roles
        raise ReportgenError(
            "E509", f"the model's processor cannot render chat messages: {e}",
            fix="use an instruct/chat model whose processor has a chat_template",
        ) from e


def conversation_text(processor, messages: list[dict[str, Any]], answer: str) -> tuple[str, str]:
    """(prompt, target): the prompt as :func:`prompt_text` and the answer as the template
    writes the assistant turn (e.g. ``"...report<|im_end|>\\n"``)."""
    prompt = prompt_text(processor, messages)
    full_msgs = without_image_paths(messages) + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    try:
        full = processor.apply_chat_template(full_msgs, tokenize=False, add_generation_prompt=False)
    except (ValueError, AttributeError):
        full = None
    if full is not None and full.startswith(prompt) and answer in full[len(prompt):]:
        return prompt, full[len(prompt):]
    eos = getattr(getattr(processor, "tokenizer", processor), "eos_token", None) or ""
    return prompt, answer + eos


def load_images(messages: list[dict[str, Any]]) -> list:
    """The prompt's images as RGB PIL images, in prompt order."""
    from reportgen.images import load_image

    return [load_image(p).convert("RGB") for p in image_paths(messages)]


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
        return dict(processor(**kwargs))
    finally:
        if old is not None:
            tok.padding_side = old
