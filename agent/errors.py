"""The one error type the service raises on purpose: a stable code, an HTTP status and a message for the owner."""

from __future__ import annotations

from typing import Literal


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def to_dict(self) -> dict[str, str]:
        return {"error": self.message, "code": self.code}


def model_unreachable(base_url: str) -> ServiceError:
    return ServiceError(
        "model_unreachable",
        f"Ollama is not reachable at {base_url}. Start it with `ollama serve` (or fix OLLAMA_BASE_URL).",
        503,
    )


def model_missing(model: str, detail: str = "") -> ServiceError:
    prefix = f"{detail} " if detail else ""
    return ServiceError(
        "model_missing",
        f"{prefix}Model '{model}' is not installed in Ollama. Install it with `ollama pull {model}`.",
        503,
    )


def ollama_failed(model: str, reason: str) -> ServiceError:
    """Ollama answered, with an error of its own: its reason, and what usually helps."""
    if "memory" in reason.lower():
        advice = "Pick a smaller model (MODELS_SMART) or a smaller OLLAMA_NUM_CTX, or free memory, then try again."
    else:
        advice = "See Ollama's log (`journalctl -u ollama` or the `ollama serve` window), then try again."
    return ServiceError("model_failed", f"Ollama could not run '{model}': {reason}. {advice}", 502)


def run_timeout(seconds: float, phase: Literal["queued", "silent", "running"] = "running") -> ServiceError:
    """The run's time ran out; what it was doing then is the likely cause, and says what to do."""
    messages = {
        "queued": f"The agent was busy with other requests for all of {seconds:g} s (AGENT_MAX_CONCURRENCY); "
        "try again in a moment.",
        "silent": f"The model had not started answering after {seconds:g} s: it may still have been loading, or it "
        "reads too slowly on this machine. Try a smaller model (first in MODELS_SMART, e.g. qwen3:4b), or raise "
        "AGENT_TIMEOUT_S.",
        "running": f"The agent did not finish within {seconds:g} s: one step took longer than the time left. Ask for "
        "something smaller, or raise AGENT_TIMEOUT_S.",
    }
    return ServiceError("timeout", messages[phase], 504)
