"""What the owner is told when a run fails: LiteLLM's, Ollama's and httpx's exceptions as ServiceErrors.

LiteLLM's exceptions derive from openai's (not from LiteLLM's own OpenAIError), their cause is httpx's, and Timeout
derives from APIConnectionError; so the whole chain of an exception is searched, and the kinds are told apart in
a fixed order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
from smolagents.utils import AgentGenerationError

from context import ContextOverflowError
from errors import ServiceError, model_missing, model_unreachable, ollama_failed
from llm import litellm  # set up there before anything imports it: no price-map fetch, no banners
from model_router import ResolvedModel
from settings import Settings

# Every log line of a run keeps the one logger name, whichever module writes it.
logger = logging.getLogger("runner")

_MODEL_ERRORS = (
    litellm.exceptions.APIConnectionError,
    litellm.exceptions.APIError,
    litellm.exceptions.InternalServerError,
    litellm.exceptions.NotFoundError,
    litellm.exceptions.AuthenticationError,
    litellm.exceptions.RateLimitError,
    litellm.exceptions.Timeout,
    litellm.exceptions.BadRequestError,
    litellm.exceptions.OpenAIError,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and the ones it came from. LiteLLM's own derive from openai's, and their cause is httpx's."""
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _in_chain(exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    return next((seen for seen in _chain(exc) if isinstance(seen, kind)), None)


def _ollama_reason(exc: BaseException) -> str | None:
    """Ollama's own words from an `{"error": "..."}` answer somewhere in the exception chain (LiteLLM keeps the body)."""
    for seen in _chain(exc):
        text = str(seen)
        start = text.find('{"error"')
        if start == -1:
            continue
        try:
            reason = json.loads(text[start:])["error"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(reason, str) and reason.strip():
            return reason.strip()[:300]
    return None


def run_failure(exc: BaseException, resolved: ResolvedModel, settings: Settings) -> ServiceError:
    """The ServiceError the owner sees for an exception that ended a run; the unexpected ones are logged by type."""
    overflow = _in_chain(exc, ContextOverflowError)
    if overflow is not None:
        return ServiceError(
            "context_overflow",
            f"The task no longer fits the model's context window ({overflow}); ask for something smaller "
            "or raise OLLAMA_NUM_CTX.",
            413,
        )
    if not isinstance(exc, AgentGenerationError):
        # The agent is third-party code: one bad turn must not take the service down, nor show its internals.
        logger.error("agent_run_failed", extra={"error_type": type(exc).__name__, "model": resolved.model_id})
        return ServiceError("agent_error", "The agent failed unexpectedly; see the agent's log and try again.", 500)
    # The first exception of the kinds told apart below (LiteLLM's derive from openai's, not from its OpenAIError).
    cause = _in_chain(exc, _MODEL_ERRORS)
    logger.warning("model_call_failed", extra={"model": resolved.model_id, "error_type": type(cause or exc).__name__})
    # Timeout derives from APIConnectionError: it must be told apart first.
    if isinstance(cause, litellm.exceptions.Timeout):
        return ServiceError(
            "model_timeout",
            f"The model did not answer within {settings.agent_timeout_s:g} s; try again, ask for something "
            "smaller or pick a smaller model.",
            504,
        )
    if resolved.provider == "ollama":
        if _in_chain(exc, httpx.ConnectError) is not None:
            return model_unreachable(settings.ollama_base_url)
        if isinstance(cause, litellm.exceptions.NotFoundError):
            return model_missing(resolved.model_id)
        if not isinstance(cause, litellm.exceptions.RateLimitError) and (reason := _ollama_reason(exc)):
            return ollama_failed(resolved.model_id, reason)
        if isinstance(cause, litellm.exceptions.APIConnectionError):
            return model_unreachable(settings.ollama_base_url)
    if isinstance(cause, litellm.exceptions.AuthenticationError):
        return ServiceError("model_auth", "Z.ai refused the API key; check ZAI_API_KEY in .env.local.", 503)
    if isinstance(cause, litellm.exceptions.RateLimitError):
        return ServiceError(
            "model_busy", "The model provider is rate-limiting or overloaded; try again in a minute.", 503
        )
    if isinstance(cause, litellm.exceptions.APIConnectionError):
        return ServiceError(
            "model_unreachable", f"{resolved.provider} is not reachable; check the network and ZAI_BASE_URL.", 503
        )
    return ServiceError("model_error", "The model failed to answer; see the agent's log and try again.", 502)
