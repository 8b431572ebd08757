"""Keep the default model loaded with the system prompt already read, so the owner's message pays only its own tokens.

On a CPU, loading an 8B model takes seconds and reading the ~2,000-token system prompt ~40 s. Ollama keeps a model
for `keep_alive` after its last call and caches the prompt it last read; this preloads both at start-up, and again
once the model would have been unloaded after a quiet spell, with the same options (a different num_ctx would
reload the model) and the same system prompt bytes as a real turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx

from errors import ServiceError
from model_router import ModelRegistry
from settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_CATEGORY = "smart"
# After the model would have been unloaded, wait this much more: Ollama's timer and ours are not the same clock.
UNLOAD_MARGIN_S = 5.0
# When Ollama is down, look again this often.
RETRY_S = 60.0


class Warmer:
    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        system_prompt: Callable[[str | None], str],
        client: httpx.Client | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._system_prompt = system_prompt
        self._client = client or httpx.Client(timeout=httpx.Timeout(settings.agent_timeout_s, connect=3.0))
        self._lock = threading.Lock()
        self._last_used = time.monotonic()
        self._persona: str | None = None
        self._thread: threading.Thread | None = None

    def used(self, persona: str | None) -> None:
        """A turn just talked to the model: the keep-alive timer restarts, and this persona is the one to preload."""
        with self._lock:
            self._last_used = time.monotonic()
            self._persona = persona

    def warm(self) -> bool:
        """Load the default model and have it read the system prompt; True when Ollama did."""
        try:
            resolved = self._registry.resolve(DEFAULT_CATEGORY)
        except ServiceError as exc:
            logger.info("warm_up_skipped", extra={"reason": exc.code})
            return False
        if resolved.provider != "ollama":
            return False
        with self._lock:
            persona = self._persona
        started = time.monotonic()
        body = {
            "model": resolved.model_id,
            "messages": [{"role": "system", "content": self._system_prompt(persona)}],
            "stream": False,
            "think": resolved.think,
            "keep_alive": self._settings.keep_alive,
            # The same num_ctx as every turn (another would reload the model); one token written is enough.
            "options": {"num_ctx": self._settings.ollama_num_ctx, "num_predict": 1},
        }
        try:
            response = self._client.post(f"{self._settings.ollama_base_url}/api/chat", json=body)
            response.raise_for_status()
            usage = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("warm_up_failed", extra={"model": resolved.model_id, "error_type": type(exc).__name__})
            return False
        logger.info(
            "warm_up_done",
            extra={
                "model": resolved.model_id,
                "prompt_tokens": usage.get("prompt_eval_count") if isinstance(usage, dict) else None,
                "duration_ms": round((time.monotonic() - started) * 1000),
            },
        )
        with self._lock:
            self._last_used = time.monotonic()
        return True

    def until_unloaded(self) -> float | None:
        """Seconds until Ollama would unload the model (negative: already); None if it never unloads."""
        keep_alive = self._settings.keep_alive_s
        if keep_alive is None:
            return None
        with self._lock:
            since = time.monotonic() - self._last_used
        return keep_alive + UNLOAD_MARGIN_S - since

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="model-warm-up", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        """Warm now; then again whenever the model would have been unloaded (or, while Ollama is down, every minute)."""
        warmed = self.warm()
        while True:
            if not warmed:
                time.sleep(RETRY_S)
                warmed = self.warm()
                continue
            wait = self.until_unloaded()
            if wait is None:
                return
            if wait > 0:
                # A turn may use the model meanwhile and restart Ollama's timer: look again when this wait ends.
                time.sleep(wait)
                continue
            warmed = self.warm()
