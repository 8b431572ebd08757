"""Which model runs a turn: Ollama detection, category preferences, the Z.ai route and its fallback."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal

import httpx

from errors import ServiceError, model_missing, model_unreachable
from settings import Settings

logger = logging.getLogger(__name__)

Provider = Literal["ollama", "zai"]
LOCAL_CATEGORIES = ("fast", "smart", "main", "vision")
CLOUD_CATEGORIES = ("code", "reason")
CATEGORIES = LOCAL_CATEGORIES + CLOUD_CATEGORIES
# When the cache says Ollama is down or a model is missing, look again if it is older than this.
RECHECK_MISSING_AFTER_S = 5.0
# Never offered as a chat fallback: they cannot hold a conversation.
_NOT_CHAT_HINTS = ("embed", "vl", "llava", "vision", "bge", "minilm")


@dataclass(frozen=True)
class ResolvedModel:
    model_id: str
    provider: Provider
    # Whether this run lets the model think before it answers (hidden tokens the owner waits for).
    think: bool = False

    @property
    def litellm_id(self) -> str:
        return f"ollama_chat/{self.model_id}" if self.provider == "ollama" else f"openai/{self.model_id}"


@dataclass(frozen=True)
class OllamaState:
    reachable: bool
    installed: tuple[str, ...]
    checked_at: float


def _canonical(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


class ModelRegistry:
    """Caches Ollama's `/api/tags` and resolves a category or an id to a model that can run."""

    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        self._settings = settings
        self._client = client or httpx.Client(timeout=httpx.Timeout(3.0, connect=1.5))
        self._lock = threading.Lock()
        # Never checked: the first look happens on first use, however young the machine's monotonic clock is.
        self._state = OllamaState(reachable=False, installed=(), checked_at=float("-inf"))
        self._thinking: dict[str, bool] = {}

    @property
    def state(self) -> OllamaState:
        return self._state

    def refresh(self) -> OllamaState:
        started = time.monotonic()
        try:
            response = self._client.get(f"{self._settings.ollama_base_url}/api/tags")
            response.raise_for_status()
            models = response.json().get("models") or []
            installed = tuple(str(m["name"]) for m in models if isinstance(m, dict) and m.get("name"))
            state = OllamaState(reachable=True, installed=installed, checked_at=time.monotonic())
        except (httpx.HTTPError, ValueError, KeyError, AttributeError) as exc:
            state = OllamaState(reachable=False, installed=(), checked_at=time.monotonic())
            logger.warning("ollama_probe_failed", extra={"error_type": type(exc).__name__})
        with self._lock:
            self._state = state
        logger.debug(
            "ollama_probe",
            extra={
                "reachable": state.reachable,
                "models": len(state.installed),
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        return state

    def current(self, max_age_s: float | None = None) -> OllamaState:
        age_limit = self._settings.ollama_refresh_s if max_age_s is None else max_age_s
        state = self._state
        if time.monotonic() - state.checked_at > age_limit:
            state = self.refresh()
        return state

    def _installed_name(self, state: OllamaState, wanted: str) -> str | None:
        by_canonical = {_canonical(name): name for name in state.installed}
        return by_canonical.get(_canonical(wanted))

    def _preferences(self, category: str) -> list[str]:
        return list(getattr(self._settings, f"models_{category}"))

    def _pick_local(self, category: str, state: OllamaState) -> str | None:
        for wanted in self._preferences(category):
            found = self._installed_name(state, wanted)
            if found:
                return found
        if category == "vision":
            return None
        # Best installed model: what the other chat categories would pick, bigger categories first, then any chat model.
        for other in ("smart", "main", "fast"):
            for wanted in self._preferences(other):
                found = self._installed_name(state, wanted)
                if found:
                    return found
        chat_models = [m for m in state.installed if not any(h in m.lower() for h in _NOT_CHAT_HINTS)]
        return chat_models[0] if chat_models else None

    def _zai_model(self, category: str) -> str:
        return self._settings.zai_model_code if category == "code" else self._settings.zai_model_reason

    def resolve(self, requested: str) -> ResolvedModel:
        """Map a category or model id to what will run, or raise a ServiceError that tells the owner what to do.

        Thinking is off unless the owner turned it on (OLLAMA_THINK) or asked for the `reason` category, and then
        only for a model that can think: Ollama refuses `think: true` to the others.
        """
        wants_thinking = requested == "reason"
        if requested in CLOUD_CATEGORIES:
            if self._settings.zai_key:
                return ResolvedModel(self._zai_model(requested), "zai", think=wants_thinking)
            requested = "smart"
        if requested in (self._settings.zai_model_code, self._settings.zai_model_reason) and self._settings.zai_key:
            return ResolvedModel(requested, "zai", think=requested == self._settings.zai_model_reason)
        local = self._resolve_local(requested)
        if (wants_thinking or self._settings.ollama_think) and self.can_think(local.model_id):
            return ResolvedModel(local.model_id, "ollama", think=True)
        return local

    def can_think(self, model_id: str) -> bool:
        """Ollama's own answer (`/api/show` capabilities), asked once per model."""
        if model_id not in self._thinking:
            try:
                response = self._client.post(f"{self._settings.ollama_base_url}/api/show", json={"model": model_id})
                response.raise_for_status()
                capabilities = response.json().get("capabilities") or []
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                logger.warning("ollama_show_failed", extra={"model": model_id, "error_type": type(exc).__name__})
                return False
            self._thinking[model_id] = "thinking" in capabilities
        return self._thinking[model_id]

    def _resolve_local(self, requested: str) -> ResolvedModel:
        state = self.current()
        picked = self._pick(requested, state) if state.reachable else None
        if picked is None and time.monotonic() - state.checked_at > RECHECK_MISSING_AFTER_S:
            # Ollama may have been started, or the model pulled, since the last look.
            state = self.refresh()
            picked = self._pick(requested, state) if state.reachable else None
        if not state.reachable:
            raise model_unreachable(self._settings.ollama_base_url)
        if picked is None:
            if requested in LOCAL_CATEGORIES:
                first = self._preferences(requested)[0] if self._preferences(requested) else "qwen3:8b"
                raise model_missing(first, f"No model for '{requested}' is installed.")
            raise model_missing(requested)
        return ResolvedModel(picked, "ollama")

    def _pick(self, requested: str, state: OllamaState) -> str | None:
        if requested in LOCAL_CATEGORIES:
            return self._pick_local(requested, state)
        return self._installed_name(state, requested)

    def vision_model(self) -> str:
        """The Ollama id of the vision model; raises ServiceError whose message says what to pull."""
        return self.resolve("vision").model_id

    def describe(self) -> dict[str, object]:
        """Every category with what it resolves to now, and every installed model (for GET /models)."""
        state = self.current()
        categories: dict[str, dict[str, object]] = {}
        for category in CATEGORIES:
            try:
                resolved = self.resolve(category)
                categories[category] = {"model": resolved.model_id, "available": True, "provider": resolved.provider}
            except ServiceError:
                categories[category] = {"model": None, "available": False, "provider": "ollama"}
        return {
            "ollama": "ok" if state.reachable else "down",
            "categories": categories,
            "installed": list(state.installed),
        }
