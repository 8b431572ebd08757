"""RunBody: whatever JSON arrives, validation either accepts it or raises pydantic's ValidationError."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import RunBody

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
run_shaped = st.fixed_dictionaries(
    {},
    optional={
        "message": json_values | st.text(min_size=1),
        "history": json_values
        | st.lists(st.fixed_dictionaries({}, optional={"role": json_values, "content": json_values}), max_size=3),
        "model": json_values | st.from_regex(r"[A-Za-z0-9._:/\-]{1,20}", fullmatch=True),
        "system_prompt": json_values,
        "images": json_values | st.lists(st.text(), max_size=7),
        "reply_to": json_values | st.text(max_size=1100),
    },
)


@given(json_values | run_shaped)
def test_run_body_accepts_or_raises_only_validation_error(value: Any) -> None:
    try:
        body = RunBody.model_validate(value)
    except ValidationError:
        return
    assert body.message.strip()
    assert len(body.images) <= 5
    assert body.reply_to is None or len(body.reply_to) <= 1000


@given(st.text(alphabet=" \t\n\r\u00a0\u2003", max_size=10))
def test_blank_messages_are_refused(message: str) -> None:
    try:
        RunBody.model_validate({"message": message})
    except ValidationError:
        return
    raise AssertionError("a blank message was accepted")


def test_reply_to_is_optional_opaque_and_at_most_1000_characters() -> None:
    assert RunBody.model_validate({"message": "hi"}).reply_to is None
    assert RunBody.model_validate({"message": "hi", "reply_to": "whatsapp:+33 6/x"}).reply_to == "whatsapp:+33 6/x"
    assert len(RunBody.model_validate({"message": "hi", "reply_to": "r" * 1000}).reply_to or "") == 1000
    for refused in ("r" * 1001, 42, ["x"]):
        try:
            RunBody.model_validate({"message": "hi", "reply_to": refused})
        except ValidationError:
            continue
        raise AssertionError(f"reply_to {refused!r:.20} was accepted")
    assert "secret-chat" not in repr(RunBody.model_validate({"message": "hi", "reply_to": "secret-chat"}))
