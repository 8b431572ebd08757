"""Configuration: files and environment precedence, list parsing, start-up refusals, and .env.example coverage."""

from __future__ import annotations

from pathlib import Path

import pytest

import settings as settings_module
from settings import REPO_ROOT, ConfigError, Settings


def make(tmp_path: Path, env_local: str = "", env: str = "", **kwargs: object) -> Settings:
    (tmp_path / ".env.local").write_text(env_local)
    (tmp_path / ".env").write_text(env)
    return Settings(_env_file=(tmp_path / ".env", tmp_path / ".env.local"), **kwargs)  # type: ignore[call-arg]


def test_env_local_wins_over_env_and_the_process_wins_over_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENT_PORT", raising=False)
    assert make(tmp_path, env_local="AGENT_PORT=8100\n", env="AGENT_PORT=8200\n").agent_port == 8100
    monkeypatch.setenv("AGENT_PORT", "8300")
    assert make(tmp_path, env_local="AGENT_PORT=8100\n").agent_port == 8300


def test_an_empty_variable_counts_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_PORT", "")
    monkeypatch.setenv("AGENT_API_KEY", "")
    loaded = make(tmp_path)
    assert loaded.agent_port == 8000 and loaded.api_key is None


def test_lists_are_comma_separated_and_relative_paths_start_at_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AGENT_TOOLS", "FILES_ALLOWED_DIRS", "MEDIA_DIR"):
        monkeypatch.delenv(name, raising=False)
    loaded = make(
        tmp_path,
        env_local="AGENT_TOOLS=web_search, os_exec\nFILES_ALLOWED_DIRS=data/files,/srv/shared\nMEDIA_DIR=data/m\n",
    )
    assert loaded.agent_tools == ["web_search", "os_exec"]
    assert loaded.allowed_dirs == [REPO_ROOT / "data" / "files", Path("/srv/shared")]
    assert loaded.media_dir == REPO_ROOT / "data" / "m"


def test_all_tools_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_TOOLS", "all")
    assert make(tmp_path).agent_tools == list(settings_module.ALL_TOOLS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"agent_api_key": "too-short"}, "shorter than 32"),
        ({"agent_host": "0.0.0.0"}, "AGENT_API_KEY is unset"),
        ({"agent_host": "192.168.1.10"}, "AGENT_API_KEY is unset"),
    ],
)
def test_unsafe_settings_are_refused(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make(tmp_path, **kwargs).check_startup()


def test_agent_timeout_must_fit_inside_the_gateways_wait(tmp_path: Path) -> None:
    # The gateway gives up on a run after 360 s (gateway/lib/agent-client.ts AGENT_TIMEOUT_MS).
    with pytest.raises(ConfigError, match=r"Timeouts must nest.*360"):
        make(tmp_path, agent_timeout_s=400).check_startup()
    make(tmp_path, agent_timeout_s=300).check_startup()


def test_gateway_wait_matches_the_gateways_agent_timeout() -> None:
    source = (REPO_ROOT / "gateway" / "lib" / "agent-client.ts").read_text()
    assert f"AGENT_TIMEOUT_MS = {settings_module.GATEWAY_WAIT_S}_000;" in source


def test_vision_timeout_must_fit_inside_a_code_step(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Timeouts must nest"):
        make(tmp_path, vision_timeout_s=200, agent_executor_timeout_s=150).check_startup()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_without_a_key_is_fine(tmp_path: Path, host: str) -> None:
    make(tmp_path, agent_host=host).check_startup()


def test_remote_host_with_a_strong_key_is_fine(tmp_path: Path) -> None:
    make(tmp_path, agent_host="0.0.0.0", agent_api_key="x" * 32).check_startup()


def test_every_setting_is_documented_in_env_example() -> None:
    example = (REPO_ROOT / ".env.example").read_text()
    documented = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line and not line.startswith("#")}
    expected = {name.upper() for name in Settings.model_fields}
    assert expected <= documented, f"missing from .env.example: {sorted(expected - documented)}"


def test_env_files_come_from_my_claw_env_dir_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENT_PORT", raising=False)
    (tmp_path / ".env.local").write_text("AGENT_PORT=8765\n")
    monkeypatch.setenv("MY_CLAW_ENV_DIR", str(tmp_path))
    settings_module.get_settings.cache_clear()
    try:
        assert settings_module.env_files() == (tmp_path / ".env", tmp_path / ".env.local")
        assert settings_module.get_settings().agent_port == 8765
    finally:
        settings_module.get_settings.cache_clear()
    monkeypatch.delenv("MY_CLAW_ENV_DIR")
    assert settings_module.env_files()[1] == REPO_ROOT / ".env.local"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, settings_module.GATEWAY_DIR / "data" / "my-claw.db"),
        ("file:./data/other.db", settings_module.GATEWAY_DIR / "data" / "other.db"),
        ("file:/srv/claw/claw.db?connection_limit=1", Path("/srv/claw/claw.db")),
    ],
)
def test_protected_files_are_the_env_files_and_the_gateway_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str | None, expected: Path
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MY_CLAW_ENV_DIR", str(tmp_path))
    loaded = make(tmp_path, env_local=f"DATABASE_URL={url}\n" if url else "")
    assert loaded.protected_files == [
        tmp_path / ".env",
        tmp_path / ".env.local",
        expected,
        *(expected.with_name(expected.name + suffix) for suffix in ("-wal", "-shm", "-journal")),
    ]


def test_the_redactor_knows_the_secrets_of_the_env_files_and_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_CLAW_ENV_DIR", str(tmp_path))
    monkeypatch.setenv("WEBCHAT_TOKEN", "webchat-token-from-process")
    monkeypatch.delenv("AGENT_API_KEY", raising=False)
    loaded = make(tmp_path, env_local="AGENT_API_KEY=" + "k" * 32 + "\n", env="CRON_SECRET=cron-from-dot-env\n")
    text = "k" * 32 + " webchat-token-from-process cron-from-dot-env"
    assert loaded.redactor.redact(text) == "[redacted] [redacted] [redacted]"
    assert loaded.redactor is loaded.redactor


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "http://127.0.0.1:3000"),
        ("http://127.0.0.1:3100/", "http://127.0.0.1:3100"),
        ("https://claw.example.org", "https://claw.example.org"),
    ],
)
def test_gateway_url_defaults_to_the_local_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, expected: str
) -> None:
    monkeypatch.delenv("GATEWAY_URL", raising=False)
    assert make(tmp_path, env_local=f"GATEWAY_URL={value}\n" if value else "").gateway_url == expected


@pytest.mark.parametrize("value", ["127.0.0.1:3000", "ftp://127.0.0.1", "http://", "gateway"])
def test_gateway_url_must_be_an_http_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.delenv("GATEWAY_URL", raising=False)
    with pytest.raises(ValueError, match="http\\(s\\) URL"):
        make(tmp_path, env_local=f"GATEWAY_URL={value}\n")
