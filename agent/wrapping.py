"""A tool that stands for another, for wrappers that add something around the call (redaction, a run's context)."""

from __future__ import annotations

from typing import Any

from smolagents import Tool


class WrappingTool(Tool):
    """The same name, description and inputs as `inner`, so the system prompt is unchanged by the wrapper.

    Subclasses call `self.inner` in `forward`, with what they add around it.
    """

    skip_forward_signature_validation = True

    def __init__(self, inner: Tool) -> None:
        self.name = inner.name
        self.description = inner.description
        self.inputs = inner.inputs
        self.output_type = inner.output_type
        super().__init__()
        self.inner = inner

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner(*args, **kwargs)
