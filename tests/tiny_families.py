"""Tiny models of each supported VLM family, BUILT from their transformers configs (no hub,
no downloads), for tests/test_families.py. Text decoders: hidden 64, 1-2 layers; vision
towers: hidden 32, 1 layer, 16-32 px images. Seeded: two builds give the same files.

``BUILDERS[family_name](out_dir) -> out_dir`` saves model + processor (with the chat
template the family's real hub checkpoints ship) into ``out_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.tiny_models import CHAT_TEMPLATE, SEED, SPECIAL_TOKENS, build_tokenizer

TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
            max_position_embeddings=4096, tie_word_embeddings=False)

# llava-hf/llava-1.5-7b-hf's template: the answer ends with a space, no </s> (bug 2's case).
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def _save(model, processor, out: Path, eos_ids, pad_id) -> Path:
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and "norm" not in name:
                p.normal_(0.0, 0.08)
    model.generation_config.eos_token_id = list(eos_ids)
    model.generation_config.pad_token_id = pad_id
    model.generation_config.do_sample = False
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out


def _vocab(tok) -> int:
    return ((len(tok) + 63) // 64) * 64


def build_qwen2_5_vl(out_dir: str | os.PathLike[str]) -> Path:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    out = Path(out_dir)
    tok = build_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config={**TEXT, "vocab_size": _vocab(tok), "hidden_size": 64, "num_attention_heads": 2,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
                     "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"], "bos_token_id": ids["<|endoftext|>"]},
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 1, "out_hidden_size": 64,
                       "patch_size": 8, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 32,
                       "fullatt_block_indexes": [0], "in_channels": 3},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = Qwen2_5_VLForConditionalGeneration(config).float().eval()
    ip = Qwen2VLImageProcessor(patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=16 * 16, max_pixels=32 * 32)
    vp = Qwen2VLVideoProcessor(patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=16 * 16, max_pixels=32 * 32)
    proc = Qwen2_5_VLProcessor(image_processor=ip, tokenizer=tok, video_processor=vp, chat_template=CHAT_TEMPLATE)
    return _save(model, proc, out, [ids["<|im_end|>"]], ids["<|endoftext|>"])


def _clip_vision(image_size: int = 32, patch: int = 8) -> dict:
    return {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "image_size": image_size, "patch_size": patch, "projection_dim": 32}


def build_llava(out_dir: str | os.PathLike[str]) -> Path:
    import torch
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    out = Path(out_dir)
    specials = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]
    tok = build_tokenizer(special_tokens=specials, eos="</s>", pad="<pad>", bos="<s>", chat_template=LLAVA_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    config = LlavaConfig(
        vision_config=_clip_vision(), text_config={"model_type": "llama", **TEXT, "vocab_size": _vocab(tok),
                                                   "bos_token_id": ids["<s>"], "eos_token_id": ids["</s>"], "pad_token_id": ids["<pad>"]},
        image_token_id=ids["<image>"], vision_feature_layer=-1, vision_feature_select_strategy="default",
        projector_hidden_act="gelu", pad_token_id=ids["<pad>"],
    )
    torch.manual_seed(SEED)
    model = LlavaForConditionalGeneration(config).float().eval()
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    proc = LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                          chat_template=LLAVA_TEMPLATE, num_additional_image_tokens=1)
    return _save(model, proc, out, [ids["</s>"]], ids["<pad>"])


def build_llava_next(out_dir: str | os.PathLike[str]) -> Path:
    import torch
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextImageProcessor, LlavaNextProcessor

    out = Path(out_dir)
    specials = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]
    tok = build_tokenizer(special_tokens=specials, eos="</s>", pad="<pad>", bos="<s>", chat_template=LLAVA_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    config = LlavaNextConfig(
        vision_config=_clip_vision(), text_config={"model_type": "llama", **TEXT, "vocab_size": _vocab(tok),
                                                   "bos_token_id": ids["<s>"], "eos_token_id": ids["</s>"], "pad_token_id": ids["<pad>"]},
        image_token_id=ids["<image>"], vision_feature_layer=-1, vision_feature_select_strategy="default",
        image_grid_pinpoints=[[32, 32], [32, 64], [64, 32]], pad_token_id=ids["<pad>"],
    )
    torch.manual_seed(SEED)
    model = LlavaNextForConditionalGeneration(config).float().eval()
    ip = LlavaNextImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                 image_grid_pinpoints=[[32, 32], [32, 64], [64, 32]])
    proc = LlavaNextProcessor(image_processor=ip, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                              chat_template=LLAVA_TEMPLATE, num_additional_image_tokens=1)
    return _save(model, proc, out, [ids["</s>"]], ids["<pad>"])


def build_paligemma(out_dir: str | os.PathLike[str]) -> Path:
    import torch
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, SiglipImageProcessor

    out = Path(out_dir)
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"]
    tok = build_tokenizer(special_tokens=specials, eos="<eos>", pad="<pad>", bos="<bos>", chat_template=None)
    ip = SiglipImageProcessor(size={"height": 32, "width": 32}, image_seq_length=16)
    ip.image_seq_length = 16
    proc = PaliGemmaProcessor(image_processor=ip, tokenizer=tok)  # adds <loc>/<seg> tokens to the tokenizer
    tok = proc.tokenizer
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    config = PaliGemmaConfig(
        vision_config={"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8, "projection_dim": 64},
        text_config={"model_type": "gemma", **TEXT, "head_dim": 32, "vocab_size": _vocab(tok), "bos_token_id": ids["<bos>"],
                     "eos_token_id": ids["<eos>"], "pad_token_id": ids["<pad>"]},
        image_token_id=ids["<image>"], projection_dim=64, pad_token_id=ids["<pad>"],
    )
    config.text_config.num_image_tokens = 16
    torch.manual_seed(SEED)
    model = PaliGemmaForConditionalGeneration(config).float().eval()
    return _save(model, proc, out, [ids["<eos>"]], ids["<pad>"])


SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for line in message['content'] %}"
    "{% if line['type'] == 'text' %}{{ line['text'] }}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_idefics3(out_dir: str | os.PathLike[str]) -> Path:
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    out = Path(out_dir)
    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
                "<global-img>", "<pad>"]
    tok = build_tokenizer(special_tokens=specials, eos="<end_of_utterance>", pad="<pad>", bos="<|im_start|>",
                          chat_template=SMOLVLM_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    config = Idefics3Config(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        text_config={"model_type": "llama", **TEXT, "vocab_size": _vocab(tok), "bos_token_id": ids["<|im_start|>"],
                     "eos_token_id": ids["<end_of_utterance>"], "pad_token_id": ids["<pad>"]},
        image_token_id=ids["<image>"], scale_factor=2, pad_token_id=ids["<pad>"], tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = Idefics3ForConditionalGeneration(config).float().eval()
    ip = Idefics3ImageProcessor(size={"longest_edge": 32}, max_image_size={"longest_edge": 32}, do_image_splitting=False)
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=4, chat_template=SMOLVLM_TEMPLATE)
    return _save(model, proc, out, [ids["<end_of_utterance>"]], ids["<pad>"])


MLLAMA_TEMPLATE = (
    "<|begin_of_text|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|image|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def build_mllama(out_dir: str | os.PathLike[str]) -> Path:
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessor, MllamaProcessor

    out = Path(out_dir)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|image|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|eot_id|>", "<|finetune_right_pad_id|>"]
    tok = build_tokenizer(special_tokens=specials, eos="<|eot_id|>", pad="<|finetune_right_pad_id|>",
                          bos="<|begin_of_text|>", chat_template=MLLAMA_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    config = MllamaConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_global_layers": 1,
                       "attention_heads": 2, "image_size": 32, "patch_size": 8, "max_num_tiles": 1,
                       "intermediate_layers_indices": [0], "vision_output_dim": 64, "supported_aspect_ratios": [[1, 1]]},
        text_config={**TEXT, "num_hidden_layers": 2, "cross_attention_layers": [1], "vocab_size": _vocab(tok),
                     "bos_token_id": ids["<|begin_of_text|>"], "eos_token_id": ids["<|eot_id|>"],
                     "pad_token_id": ids["<|finetune_right_pad_id|>"]},
        image_token_index=ids["<|image|>"],
    )
    torch.manual_seed(SEED)
    model = MllamaForConditionalGeneration(config).float().eval()
    ip = MllamaImageProcessor(size={"height": 32, "width": 32}, max_image_tiles=1)
    proc = MllamaProcessor(image_processor=ip, tokenizer=tok, chat_template=MLLAMA_TEMPLATE)
    return _save(model, proc, out, [ids["<|eot_id|>"], ids["<|end_of_text|>"]], ids["<|finetune_right_pad_id|>"])


GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{% set sys = m['content'] %}{% else %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<start_of_image>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_turn>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def build_gemma3(out_dir: str | os.PathLike[str]) -> Path:
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor

    out = Path(out_dir)
    specials = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
                "<image_soft_token>"]
    tok = build_tokenizer(special_tokens=specials, eos="<eos>", pad="<pad>", bos="<bos>", chat_template=GEMMA3_TEMPLATE,
                          extra={"extra_special_tokens": {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                                          "image_token": "<image_soft_token>"}})
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    config = Gemma3Config(
        text_config={**TEXT, "head_dim": 32, "vocab_size": _vocab(tok), "sliding_window": 64, "bos_token_id": ids["<bos>"],
                     "eos_token_id": ids["<end_of_turn>"], "pad_token_id": ids["<pad>"]},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        mm_tokens_per_image=4, boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"], tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = Gemma3ForConditionalGeneration(config).float().eval()
    ip = Gemma3ImageProcessor(size={"height": 32, "width": 32})
    proc = Gemma3Processor(image_processor=ip, tokenizer=tok, chat_template=GEMMA3_TEMPLATE, image_seq_length=4)
    return _save(model, proc, out, [ids["<end_of_turn>"], ids["<eos>"]], ids["<pad>"])


BUILDERS = {
    "Qwen2.5-VL": build_qwen2_5_vl,
    "LLaVA-1.5": build_llava,
    "LLaVA-NeXT": build_llava_next,
    "PaliGemma": build_paligemma,
    "Idefics3 / SmolVLM": build_idefics3,
    "Llama-3.2-Vision": build_mllama,
    "Gemma 3 / MedGemma": build_gemma3,
}
