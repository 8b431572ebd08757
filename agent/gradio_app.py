"""Developer console: chat with the same agent in-process, watching its steps as they happen."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

# Gradio reports usage and checks its version online unless told not to; nothing leaves this machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from claw_agent import steps_text  # noqa: E402
from errors import ServiceError  # noqa: E402
from events import DeltaEvent, ErrorEvent, FinalEvent, StepEvent, ThinkingEvent  # noqa: E402
from factory import build_runner, settings_or_exit  # noqa: E402
from history import Turn  # noqa: E402
from logs import configure_logging  # noqa: E402
from runner import AgentRunner, RunRequest  # noqa: E402
from settings import Settings  # noqa: E402
from tools.send_file import human_size  # noqa: E402

logger = logging.getLogger("agent.console")
# The gateway's English note (gateway/lib/unfinished-note.ts) under an answer whose steps ran out.
UNFINISHED_NOTE = "⏹ Stopped after {steps}, before finishing (step or time limit)."
# System fonts only: the default theme would make the browser fetch Google Fonts.
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def history_turns(history: list[dict[str, Any]]) -> list[Turn]:
    """The conversation as the agent sees it: the owner's messages and final answers, not the step panels."""
    turns: list[Turn] = []
    for message in history:
        role = message.get("role")
        if role in ("user", "assistant") and not (message.get("metadata") or {}).get("title"):
            turns.append(Turn(role, _text(message.get("content"))))
    return turns


def model_choices(runner: AgentRunner) -> list[tuple[str, str]]:
    described = runner.registry.describe()
    categories: dict[str, dict[str, Any]] = described["categories"]  # type: ignore[assignment]
    choices = [(f"{name} → {info['model'] or 'not installed'}", name) for name, info in categories.items()]
    installed: list[str] = described["installed"]  # type: ignore[assignment]
    return choices + [(model_id, model_id) for model_id in installed]


def console_chat(runner: AgentRunner, settings: Settings) -> Any:
    def chat(message: str, history: list[dict[str, Any]], model: str) -> Iterator[list[gr.ChatMessage]]:
        shown: list[gr.ChatMessage] = []
        try:
            prepared = runner.prepare(
                RunRequest(message=message, history=history_turns(history), model=model or "smart")
            )
        except ServiceError as exc:
            yield [gr.ChatMessage(role="assistant", content=f"⚠️ {exc.message}")]
            return
        cancel, timed_out = threading.Event(), threading.Event()

        def expire() -> None:
            timed_out.set()
            cancel.set()

        timer = threading.Timer(settings.gradio_timeout_s, expire)
        timer.start()
        deadline = time.monotonic() + settings.gradio_timeout_s  # the agent ends with a summary before it
        draft = gr.ChatMessage(role="assistant", content="", metadata={"title": "✍️ Model output", "status": "pending"})
        thinking = gr.ChatMessage(role="assistant", content="", metadata={"title": "💭 Thinking", "status": "pending"})
        try:
            for event in runner.events(prepared, cancel, deadline):
                if isinstance(event, ThinkingEvent):
                    # Progress only: its own panel, never the answer.
                    if thinking not in shown:
                        shown.append(thinking)
                    thinking.content = f"{thinking.content}{event.text}"
                elif isinstance(event, DeltaEvent):
                    if thinking in shown:
                        thinking.metadata = {"title": "💭 Thinking", "status": "done"}
                        thinking = gr.ChatMessage(
                            role="assistant", content="", metadata={"title": "💭 Thinking", "status": "pending"}
                        )
                    if draft not in shown:
                        shown.append(draft)
                    draft.content = f"{draft.content}{event.text}"
                elif isinstance(event, StepEvent):
                    draft.metadata = {"title": "✍️ Model output", "status": "done"}
                    draft = gr.ChatMessage(
                        role="assistant", content="", metadata={"title": "✍️ Model output", "status": "pending"}
                    )
                    tools = ", ".join(call["name"] for call in event.tool_calls) or "no tool"
                    body = f"**Error:** {event.error}" if event.error else f"```\n{event.observation or ''}\n```"
                    shown.append(
                        gr.ChatMessage(
                            role="assistant",
                            content=body,
                            metadata={
                                "title": f"🛠️ Step {event.step}: {tools} ({event.duration_ms} ms)",
                                "status": "done",
                            },
                        )
                    )
                elif isinstance(event, FinalEvent):
                    note = "" if event.finished else "\n\n" + UNFINISHED_NOTE.format(steps=steps_text(event.steps))
                    if event.attachments:  # sent with the answer in a chat; here, only named
                        files = ", ".join(f"{a['name']} ({human_size(a['size'])})" for a in event.attachments)
                        note += f"\n\n📎 {files}"
                    shown.append(gr.ChatMessage(role="assistant", content=event.response + note))
                    logger.info(
                        "console_run_done",
                        extra={
                            "model": event.model,
                            "steps": event.steps,
                            "duration_ms": event.duration_ms,
                            "finished": event.finished,
                            "attachments": len(event.attachments),
                        },
                    )
                elif isinstance(event, ErrorEvent):
                    shown.append(gr.ChatMessage(role="assistant", content=f"⚠️ {event.error}"))
                yield shown
        finally:
            timer.cancel()
        if timed_out.is_set() and not any(m.content and not m.metadata for m in shown):
            shown.append(
                gr.ChatMessage(
                    role="assistant",
                    content=f"⚠️ No answer within {settings.gradio_timeout_s:g} s; the run was stopped.",
                )
            )
            yield shown

    return chat


def build_console(runner: AgentRunner, settings: Settings) -> gr.ChatInterface:
    choices = model_choices(runner)
    return gr.ChatInterface(
        fn=console_chat(runner, settings),
        additional_inputs=[gr.Dropdown(choices=choices, value="smart", label="Model")],
        additional_inputs_accordion=gr.Accordion("Model", open=True),
        title="my-claw console",
        description="The agent in-process: every step, observation and the final answer as they happen.",
        analytics_enabled=False,
        fill_height=True,
    )


def main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.redactor)
    console = build_console(build_runner(settings), settings)
    console.queue(default_concurrency_limit=settings.agent_max_concurrency).launch(
        server_name="127.0.0.1", server_port=settings.gradio_port, share=False, theme=THEME, show_error=False
    )


if __name__ == "__main__":
    main()
