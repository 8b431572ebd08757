"""Model detection, category preferences and fallbacks, against a fake Ollama's /api/tags."""

from __future__ import annotations

import pytest

from errors import ServiceError
from model_router import ModelRegistry
from settings import Settings
from tests.fakes.ollama import FakeOllama


def registry(url: str, **settings: object) -> ModelRegistry:
    return ModelRegistry(Settings(_env_file=None, ollama_base_url=url, **settings))  # type: ignore[call-arg]


@pytest.fixture
def ollama() -> FakeOllama:
    server = FakeOllama(models=("qwen3:8b",)).start()
    yield server
    server.stop()


def test_category_takes_its_first_installed_preference(ollama: FakeOllama) -> None:
    ollama.models[:] = ["qwen3:14b", "qwen3:4b", "qwen3:8b"]
    models = registry(ollama.url)
    assert models.resolve("fast").model_id == "qwen3:4b"
    assert models.resolve("smart").model_id == "qwen3:8b"
    assert models.resolve("main").model_id == "qwen3:14b"


def test_preference_lists_are_configurable(ollama: FakeOllama) -> None:
    ollama.models[:] = ["qwen3:4b", "gemma3:12b"]
    assert registry(ollama.url, models_smart=["gemma3:12b", "qwen3:8b"]).resolve("smart").model_id == "gemma3:12b"


def test_category_falls_back_to_the_best_installed_model(ollama: FakeOllama) -> None:
    ollama.models[:] = ["nomic-embed-text:latest", "phi4:14b"]
    assert registry(ollama.url).resolve("fast").model_id == "phi4:14b"
    ollama.models[:] = ["qwen3:8b", "phi4:14b"]
    assert registry(ollama.url).resolve("main").model_id == "qwen3:8b", "a known chat model before an unknown one"


def test_vision_prefers_the_instruct_tags(ollama: FakeOllama) -> None:
    # Some qwen3-vl thinking tags think even with think:false (ollama issues #12837, #13353).
    ollama.models[:] = ["qwen3-vl:2b-instruct"]
    assert registry(ollama.url).resolve("vision").model_id == "qwen3-vl:2b-instruct"
    ollama.models[:] = ["qwen3-vl:2b", "qwen3-vl:2b-instruct"]
    assert registry(ollama.url).resolve("vision").model_id == "qwen3-vl:2b-instruct"


def test_vision_never_falls_back_to_a_text_model(ollama: FakeOllama) -> None:
    ollama.models[:] = ["qwen3:8b"]
    with pytest.raises(ServiceError) as caught:
        registry(ollama.url).resolve("vision")
    assert caught.value.code == "model_missing" and "ollama pull qwen3-vl:2b" in caught.value.message


def test_nothing_installed_names_the_model_to_pull(ollama: FakeOllama) -> None:
    ollama.models[:] = []
    with pytest.raises(ServiceError) as caught:
        registry(ollama.url).resolve("smart")
    assert caught.value.status == 503 and "ollama pull qwen3:8b" in caught.value.message


def test_explicit_ids_match_with_or_without_latest(ollama: FakeOllama) -> None:
    ollama.models[:] = ["llama3.2:latest"]
    models = registry(ollama.url)
    assert models.resolve("llama3.2").model_id == "llama3.2:latest"
    with pytest.raises(ServiceError, match="ollama pull mistral"):
        models.resolve("mistral")


def test_cloud_categories_fall_back_to_smart_without_a_key(ollama: FakeOllama) -> None:
    resolved = registry(ollama.url).resolve("reason")
    assert (resolved.model_id, resolved.provider, resolved.litellm_id) == ("qwen3:8b", "ollama", "ollama_chat/qwen3:8b")


def test_cloud_categories_use_zai_with_a_key(ollama: FakeOllama) -> None:
    models = registry(ollama.url, zai_api_key="x" * 40)
    code, reason = models.resolve("code"), models.resolve("reason")
    assert (code.model_id, code.provider, code.litellm_id) == ("glm-4.7-flash", "zai", "openai/glm-4.7-flash")
    assert reason.model_id == "glm-4.7"


def test_unreachable_ollama_is_model_unreachable() -> None:
    with pytest.raises(ServiceError) as caught:
        registry("http://127.0.0.1:9").resolve("smart")
    assert caught.value.code == "model_unreachable" and "ollama serve" in caught.value.message


def test_detection_is_cached_then_refreshed(ollama: FakeOllama) -> None:
    models = registry(ollama.url, ollama_refresh_s=3600)
    assert models.resolve("smart").model_id == "qwen3:8b"
    ollama.models[:] = ["qwen3:4b"]
    assert models.resolve("smart").model_id == "qwen3:8b", "within the refresh period the cache answers"
    models.refresh()
    assert models.resolve("smart").model_id == "qwen3:4b"


def test_a_model_pulled_since_the_last_look_is_found(ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> None:
    import model_router

    models = registry(ollama.url, ollama_refresh_s=3600)
    models.refresh()
    ollama.models.append("mistral:7b")
    monkeypatch.setattr(model_router, "RECHECK_MISSING_AFTER_S", 0.0)
    assert models.resolve("mistral:7b").model_id == "mistral:7b"


def test_ollama_started_after_the_service_is_found_without_waiting_for_the_refresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import model_router

    server = FakeOllama(models=("qwen3:8b",))
    port = server.server_address[1]
    server.server_close()  # reserve a port, with nothing listening yet
    models = registry(f"http://127.0.0.1:{port}", ollama_refresh_s=3600)
    with pytest.raises(ServiceError, match="not reachable"):
        models.resolve("smart")
    monkeypatch.setattr(model_router, "RECHECK_MISSING_AFTER_S", 0.0)
    revived = FakeOllama(port=port, models=("qwen3:8b",)).start()
    try:
        assert models.resolve("smart").model_id == "qwen3:8b"
    finally:
        revived.stop()
