"""The agent service's configuration: one class, read once from the environment and `.env.local`."""

from __future__ import annotations

import ipaddress
import os
import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from redact import Redactor, load_redactor

AGENT_DIR = Path(__file__).resolve().parent
REPO_ROOT = AGENT_DIR.parent
GATEWAY_DIR = REPO_ROOT / "gateway"
# SQLite keeps these next to the database while it writes.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
MIN_SECRET_LENGTH = 32
DEFAULT_EXECUTOR_TIMEOUT_S = 150.0
DEFAULT_VISION_TIMEOUT_S = 120.0
# The gateway's wait for one run (gateway/lib/agent-client.ts AGENT_TIMEOUT_MS); AGENT_TIMEOUT_S must fit inside it.
GATEWAY_WAIT_S = 360
_KEEP_ALIVE = re.compile(r"-?\d+|(?:\d+(?:\.\d+)?(?:h|m|s|ms))+")

CommaList = Annotated[list[str], NoDecode]
ALL_TOOLS = (
    "web_search",
    "file_system",
    "os_exec",
    "clipboard",
    "screenshot",
    "mouse_keyboard",
    "analyze_image",
    "schedule_message",
    "send_file",
)
DEFAULT_IMPORTS = ("json", "csv", "datetime", "zoneinfo", "re", "math", "requests", "urllib.parse")


class ConfigError(Exception):
    """A setting that makes a feature unsafe or unusable; raised at start-up, never mid-request."""


class Settings(BaseSettings):
    # The process environment wins over the files; `.env.local` wins over `.env`.
    model_config = SettingsConfigDict(
        env_file=(REPO_ROOT / ".env", REPO_ROOT / ".env.local"),
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    agent_host: str = "127.0.0.1"
    agent_port: int = Field(default=8000, ge=1, le=65535)
    agent_api_key: SecretStr | None = None
    agent_max_concurrency: int = Field(default=2, ge=1, le=64)
    agent_timeout_s: float = Field(default=240, gt=0)
    agent_max_steps: int = Field(default=6, ge=1, le=50)
    # 0: derived from AGENT_TIMEOUT_S (below) so that the timeouts always nest.
    agent_executor_timeout_s: float = Field(default=0, ge=0)
    agent_max_output_tokens: int = Field(default=1024, ge=16)
    agent_max_thinking_tokens: int = Field(default=2048, ge=0)
    agent_max_observation_chars: int = Field(default=4000, ge=200)
    agent_authorized_imports: CommaList = list(DEFAULT_IMPORTS)
    agent_tools: CommaList = list(ALL_TOOLS)
    agent_max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # send_file: the largest file sent back (WhatsApp's document limit), and how long GET /files/{id} serves it.
    agent_max_attachment_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    agent_attachment_ttl_s: float = Field(default=3600, gt=0)
    log_level: str = "INFO"

    ollama_base_url: str = "http://127.0.0.1:11434"
    ollama_num_ctx: int = Field(default=8192, ge=2048)
    ollama_think: bool = False
    ollama_keep_alive: str = "30m"
    ollama_warm_up: bool = True
    ollama_refresh_s: float = Field(default=60, gt=0)
    models_fast: CommaList = ["qwen3:4b", "qwen3:1.7b", "llama3.2:3b", "gemma3:4b", "qwen3:8b"]
    models_smart: CommaList = ["qwen3:8b", "qwen3:14b", "llama3.1:8b", "mistral:7b", "gemma3:12b", "qwen3:4b"]
    models_main: CommaList = ["qwen3:14b", "qwen3:32b", "gemma3:27b", "mistral-small:24b", "qwen3:8b"]
    # -instruct first: some qwen3-vl thinking tags think even with think:false (ollama issues #12837, #13353).
    models_vision: CommaList = [
        "qwen3-vl:2b-instruct",
        "qwen3-vl:4b-instruct",
        "qwen3-vl:8b-instruct",
        "qwen3-vl:2b",
        "qwen3-vl:4b",
        "qwen3-vl:8b",
        "qwen2.5vl:3b",
        "llava:7b",
        "gemma3:4b",
    ]

    zai_api_key: SecretStr | None = None
    zai_base_url: str = "https://api.z.ai/api/paas/v4"
    zai_model_code: str = "glm-4.7-flash"
    zai_model_reason: str = "glm-4.7"

    searxng_url: str = "http://127.0.0.1:8888"
    # The gateway's own API (schedule_message creates reminders there, approvals.py asks the owner there), with
    # AGENT_API_KEY as a bearer.
    gateway_url: str = "http://127.0.0.1:3000"
    # approvals.py: when a side effect waits for the owner's approval (untrusted: after outside content entered the
    # turn; always; off), and how long the gateway waits for the answer (it reads APPROVAL_TIMEOUT_S too).
    approval_mode: Literal["untrusted", "always", "off"] = "untrusted"
    approval_timeout_s: float = Field(default=600, gt=0)
    files_allowed_dirs: CommaList = [str(REPO_ROOT / "data" / "files")]
    screenshot_dir: Path = REPO_ROOT / "data" / "screenshots"
    media_dir: Path = REPO_ROOT / "data" / "media"
    os_exec_timeout_s: float = Field(default=30, gt=0)
    os_exec_max_output: int = Field(default=10_000, ge=100)
    vision_timeout_s: float = Field(default=0, ge=0)
    vision_max_pixels: int = Field(default=1280, ge=256)

    gradio_port: int = Field(default=7860, ge=1, le=65535)
    gradio_timeout_s: float = Field(default=300, gt=0)

    # The gateway's database, read here only to keep os_exec and file_system away from it.
    database_url: str = "file:./data/my-claw.db"

    @field_validator(
        "agent_authorized_imports",
        "agent_tools",
        "models_fast",
        "models_smart",
        "models_main",
        "models_vision",
        "files_allowed_dirs",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("approval_mode", mode="before")
    @classmethod
    def _lower_mode(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("agent_tools")
    @classmethod
    def _known_tools(cls, value: list[str]) -> list[str]:
        if value == ["all"]:
            return list(ALL_TOOLS)
        unknown = sorted(set(value) - set(ALL_TOOLS))
        if unknown:
            raise ValueError(f"unknown tools {unknown}; choose from {', '.join(ALL_TOOLS)}")
        return value

    @model_validator(mode="after")
    def _nested_timeouts(self) -> Settings:
        """Unset inner timeouts fit inside the outer ones: a code step within the turn, a vision call within a step."""
        if not self.agent_executor_timeout_s:
            self.agent_executor_timeout_s = min(DEFAULT_EXECUTOR_TIMEOUT_S, round(self.agent_timeout_s * 0.75, 1))
        if not self.vision_timeout_s:
            self.vision_timeout_s = min(DEFAULT_VISION_TIMEOUT_S, round(self.agent_executor_timeout_s * 0.8, 1))
        return self

    @field_validator("ollama_keep_alive")
    @classmethod
    def _keep_alive(cls, value: str) -> str:
        # Ollama takes a number of seconds or a Go duration ("30m", "1h30m"); a numeric string is rejected there.
        if not _KEEP_ALIVE.fullmatch(value.strip()):
            raise ValueError("use a duration such as 30m, 2h or 90s, a number of seconds, or -1 (never unload)")
        return value.strip()

    @field_validator("ollama_base_url", "zai_base_url", "searxng_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("gateway_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("use an http(s) URL such as http://127.0.0.1:3000")
        return value.strip().rstrip("/")

    @field_validator("screenshot_dir", "media_dir")
    @classmethod
    def _from_repo_root(cls, value: Path) -> Path:
        return value if value.is_absolute() else REPO_ROOT / value

    @property
    def allowed_dirs(self) -> list[Path]:
        """Allowed folders as absolute paths; relative entries are taken from the repository root."""
        return [
            (REPO_ROOT / d).resolve() if not Path(d).is_absolute() else Path(d).resolve()
            for d in self.files_allowed_dirs
        ]

    @property
    def readable_dirs(self) -> list[Path]:
        """Folders whose files analyze_image and send_file may read: the allowed ones, screenshots, received media."""
        return [*self.allowed_dirs, self.screenshot_dir, self.media_dir]

    @property
    def database_path(self) -> Path:
        """The gateway's SQLite file: DATABASE_URL without `file:` and its query, relative to gateway/."""
        raw = self.database_url.removeprefix("file:").split("?", 1)[0] or "./data/my-claw.db"
        path = Path(raw).expanduser()
        return path if path.is_absolute() else GATEWAY_DIR / path

    @property
    def protected_files(self) -> list[Path]:
        """Files no tool may touch even inside the allowed folders: the env files and the gateway's database."""
        database = self.database_path
        return [*env_files(), database, *(database.with_name(database.name + s) for s in SQLITE_COMPANIONS)]

    @cached_property
    def redactor(self) -> Redactor:
        """Every secret of the env files and the process environment; built once per settings load."""
        return load_redactor(env_files(), os.environ, extra=(self.api_key, self.zai_key))

    @property
    def keep_alive(self) -> str | int:
        """OLLAMA_KEEP_ALIVE as Ollama's API takes it: seconds as a number, anything else as a duration string."""
        value = self.ollama_keep_alive
        return int(value) if value.lstrip("-").isdigit() else value

    @property
    def keep_alive_s(self) -> float | None:
        """Seconds a model stays loaded after a request; None when it never unloads (a negative keep-alive)."""
        value = self.keep_alive
        if isinstance(value, int):
            return None if value < 0 else float(value)
        units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value))

    @property
    def api_key(self) -> str | None:
        return self.agent_api_key.get_secret_value() if self.agent_api_key else None

    @property
    def zai_key(self) -> str | None:
        return self.zai_api_key.get_secret_value() if self.zai_api_key else None

    def check_startup(self) -> None:
        """Refuse configurations that would open the machine to others."""
        key = self.api_key
        if key is not None and len(key) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"AGENT_API_KEY is shorter than {MIN_SECRET_LENGTH} characters; "
                "generate one with `openssl rand -hex 32` and put it in .env.local"
            )
        if not self.vision_timeout_s < self.agent_executor_timeout_s < self.agent_timeout_s < GATEWAY_WAIT_S:
            raise ConfigError(
                "Timeouts must nest: VISION_TIMEOUT_S < AGENT_EXECUTOR_TIMEOUT_S < AGENT_TIMEOUT_S "
                f"< the gateway's {GATEWAY_WAIT_S} s wait for the agent "
                f"(now {self.vision_timeout_s:g} < {self.agent_executor_timeout_s:g} < {self.agent_timeout_s:g} "
                f"< {GATEWAY_WAIT_S}); a slower inner step would be cut off by the outer one and its work lost"
            )
        if self.agent_max_output_tokens * 2 > self.ollama_num_ctx:
            raise ConfigError(
                f"AGENT_MAX_OUTPUT_TOKENS={self.agent_max_output_tokens} leaves too little of OLLAMA_NUM_CTX="
                f"{self.ollama_num_ctx} for the prompt; lower it or raise OLLAMA_NUM_CTX"
            )
        if key is None and not is_loopback(self.agent_host):
            raise ConfigError(
                f"AGENT_HOST={self.agent_host} is reachable from other machines but AGENT_API_KEY is unset; "
                "set AGENT_API_KEY (32+ characters) or bind to 127.0.0.1"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def env_files() -> tuple[Path, Path]:
    """`.env` then `.env.local` (which wins) from the repository root, or from MY_CLAW_ENV_DIR (the tests' empty one)."""
    folder = Path(os.environ["MY_CLAW_ENV_DIR"]) if os.environ.get("MY_CLAW_ENV_DIR") else REPO_ROOT
    return folder / ".env", folder / ".env.local"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings(_env_file=env_files())  # type: ignore[call-arg]
