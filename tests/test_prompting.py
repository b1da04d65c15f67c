"""Drafting prompts: versioned template data -> backend-independent chat messages."""

from __future__ import annotations

import json

import pytest

from reportgen.errors import ReportgenError
from reportgen.prompting import (
    PROMPT_VERSION, TASKS, image_paths, load_template, render_messages, without_image_paths,
)
from reportgen.types import Study

TWO_VIEWS = Study("s1", images=("/x/front.png", "/x/side.png"), views=("PA", "LATERAL"),
                  indication="Cough and fever.", comparison="Chest radiograph of 2020-01-02.")


def user_parts(messages):
    assert [m["role"] for m in messages] == ["system", "user"]
    assert isinstance(messages[0]["content"], str) and messages[0]["content"]
    return messages[1]["content"]


def test_multi_view_study_goes_into_one_prompt_labelled_by_view():
    parts = user_parts(render_messages(TWO_VIEWS))
    kinds = [p["type"] for p in parts]
    assert kinds == ["text", "image", "text", "image", "text"]
    assert parts[1] == {"type": "image", "image": "/x/front.png"}
    assert parts[3] == {"type": "image", "image": "/x/side.png"}
    assert "frontal" in parts[0]["text"] and "PA" in parts[0]["text"]
    assert "lateral" in parts[2]["text"]
    assert image_paths(render_messages(TWO_VIEWS)) == ["/x/front.png", "/x/side.png"]


def test_indication_and_comparison_slots_are_filled_or_left_out():
    text = user_parts(render_messages(TWO_VIEWS))[-1]["text"]
    assert "Indication: Cough and fever." in text
    assert "Comparison: Chest radiograph of 2020-01-02." in text
    bare = user_parts(render_messages(Study("s2", images=("/x/a.png",))))[-1]["text"]
    assert "Indication" not in bare and "Comparison" not in bare
    assert "view not given" in user_parts(render_messages(Study("s2", images=("/x/a.png",))))[0]["text"]


def test_each_task_has_its_own_instruction_and_unknown_tasks_fail():
    texts = {t: user_parts(render_messages(TWO_VIEWS, t))[-1]["text"] for t in TASKS}
    assert len(set(texts.values())) == len(TASKS)
    assert "FINDINGS" in texts["findings"] and "IMPRESSION" in texts["impression"]
    with pytest.raises(ReportgenError) as e:
        render_messages(TWO_VIEWS, "summary")
    assert e.value.code == "E521" and "findings" in str(e.value)


def test_messages_are_json_and_deterministic():
    a, b = render_messages(TWO_VIEWS), render_messages(TWO_VIEWS)
    assert a == b and json.loads(json.dumps(a)) == a
    stripped = without_image_paths(a)
    assert {"type": "image"} in stripped[1]["content"] and image_paths(stripped) == []
    assert a[1]["content"][1]["image"] == "/x/front.png"  # the original is untouched


def test_prompt_version_comes_from_the_template_file():
    t = load_template()
    assert PROMPT_VERSION == t.version and PROMPT_VERSION.startswith("draft-")


def test_user_template_file(tmp_path):
    from reportgen import prompts

    data = json.loads(prompts.load("draft.json"))
    data["version"] = "my-v7"
    data["tasks"]["findings"] = "Findings please ({n_images} images)."
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    t = load_template(path)
    msgs = render_messages(TWO_VIEWS, template=t)
    assert t.version == "my-v7" and msgs[1]["content"][-1]["text"].endswith("Findings please (2 images).")
    del data["tasks"]["impression"]
    path.write_text(json.dumps(data))
    with pytest.raises(ReportgenError) as e:
        load_template(path)
    assert e.value.code == "E520" and "impression" in str(e.value)
    path.write_text("{not json")
    with pytest.raises(ReportgenError):
        load_template(path)


def test_dicom_view_is_read_from_the_header_when_not_given(test_data):
    dcm = str(test_data / "cxr" / "rsna_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm")
    parts = user_parts(render_messages(Study("d", images=(dcm,))))
    assert "PA" in parts[0]["text"]


def test_the_chat_template_places_one_image_block_per_view(tiny_vlm_dir):
    from reportgen.encoding import prompt_text
    from reportgen.models import load_processor

    text = prompt_text(load_processor(str(tiny_vlm_dir)), render_messages(TWO_VIEWS))
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert text.index("Image 1") < text.index("<|vision_start|>") < text.index("Image 2")
    assert text.endswith("<|im_start|>assistant\n")
