"""What every process that runs the agent starts with: checked settings, and the runner with its model registry,
tools and warm-up. Shared by the web service (main.py) and the Gradio console (gradio_app.py)."""

from __future__ import annotations

import logging
import os
import sys

from pydantic import ValidationError

from logs import configure_logging
from model_router import ModelRegistry
from redact import load_redactor
from runner import AgentRunner
from settings import ConfigError, Settings, env_files, get_settings
from tools import build_tools
from warmup import Warmer


def settings_or_exit() -> Settings:
    """Settings for a process about to start; an invalid or unsafe configuration ends it with one clear log line."""
    try:
        settings = get_settings()
        settings.check_startup()
    except (ConfigError, ValidationError) as exc:
        # No settings to take the secrets from: the same files and environment, read directly.
        configure_logging(redactor=load_redactor(env_files(), os.environ))
        logging.getLogger("agent").error("startup_refused", extra={"reason": str(exc)})
        sys.exit(2)
    return settings


def build_runner(settings: Settings) -> AgentRunner:
    """The runner with its tools; with OLLAMA_WARM_UP, the default model is preloaded in the background."""
    registry = ModelRegistry(settings)
    registry.refresh()
    runner = AgentRunner(settings, registry, build_tools(settings, registry.vision_model))
    runner.warm_up()
    if settings.ollama_warm_up:
        warmer = Warmer(settings, registry, runner.system_prompt)
        runner.on_model_used = warmer.used
        warmer.start()
    return runner
