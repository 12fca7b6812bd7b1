"""Chat templates as real GGUFs carry them: DeepSeek-R1 distills, with namespaces and splits."""

from __future__ import annotations

import pytest

from bendi.core.errors import InvalidModelFileError, UserInputError
from bendi.engines.chat_template import CHATML_TEMPLATE, ChatTemplate
from bendi.engines.messages import ChatMessage

# The chat template of DeepSeek-R1-Distill-Qwen GGUFs (tokenizer.chat_template), tool parts trimmed.
R1_DISTILL = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}"
    "{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}"
    "{{bos_token}}{{ns.system_prompt}}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}"
    "{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}"
    "{%- endfor -%}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}"
)


def test_r1_distill_template_renders_and_opens_the_reasoning_block() -> None:
    template = ChatTemplate(
        R1_DISTILL, bos_token="<｜begin▁of▁sentence｜>", eos_token="<｜end▁of▁sentence｜>"
    )
    history = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "2+2?"),
        ChatMessage("assistant", "<think>easy</think>4"),
        ChatMessage("user", "And 3+3?"),
    ]
    rendered = template.render(history)
    assert rendered.text == (
        "<｜begin▁of▁sentence｜>Be brief.<｜User｜>2+2?<｜Assistant｜>4<｜end▁of▁sentence｜>"
        "<｜User｜>And 3+3?<｜Assistant｜><think>\n"
    )
    assert rendered.opens_reasoning  # the model's output starts inside the reasoning chain
    closed = template.render(history, add_generation_prompt=False)
    assert not closed.opens_reasoning and closed.text.endswith("<｜User｜>And 3+3?")


def test_chatml_fallback_and_template_helpers() -> None:
    text = ChatTemplate(CHATML_TEMPLATE).render([ChatMessage("user", "hi")]).text
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    dated = ChatTemplate("{{ strftime_now('%Y') }}").render([]).text
    assert dated.isdigit() and len(dated) == 4
    looped = ChatTemplate(
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m['content'] | tojson }}{% endfor %}"
    )
    assert looped.render([ChatMessage("user", "<a & 中>"), ChatMessage("user", "x")]).text == '"<a & 中>"'


def test_template_raise_exception_becomes_a_user_error() -> None:
    template = ChatTemplate(
        "{% for m in messages %}{% if m['role'] == 'system' and not loop.first %}"
        "{{ raise_exception('System message must be first') }}{% endif %}{% endfor %}"
    )
    with pytest.raises(UserInputError, match="System message must be first"):
        template.render([ChatMessage("user", "a"), ChatMessage("system", "b")])


@pytest.mark.parametrize(
    "hostile",
    [
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ raise_exception.__globals__ }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{% set d = {} %}{{ d.update({'a': 1}) }}",
    ],
)
def test_more_sandbox_escapes_are_refused(hostile: str) -> None:
    with pytest.raises(InvalidModelFileError, match="unsafe"):
        ChatTemplate(hostile).render([ChatMessage("user", "hi")])


def test_a_template_that_does_not_compile_is_an_invalid_model_file() -> None:
    with pytest.raises(InvalidModelFileError, match="does not compile"):
        ChatTemplate("{% for m in messages %}")
