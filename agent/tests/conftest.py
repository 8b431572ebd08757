"""Fixtures: fake model, search and gateway servers, and the real agent service as a subprocess on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.gateway import FakeGateway
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_compat import FakeOpenAI
from tests.fakes.searxng import FakeSearxng

pytest_plugins = ["tests.tools_fixtures"]

AGENT_DIR = Path(__file__).resolve().parents[1]
API_KEY = "k" * 40
ZAI_KEY = "zai-test-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    api_key: str | None

    def client(self, key: str | None = "default", timeout: float = 30) -> httpx.Client:
        token = self.api_key if key == "default" else key
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


def service_env(tmp: Path, **overrides: str) -> dict[str, str]:
    """A clean environment: nothing from the developer's `.env.local` leaks in, since the process env wins."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENT_", "OLLAMA_", "ZAI_", "SEARXNG_", "FILES_", "MODELS_", "GATEWAY_"))
    }
    (tmp / "no-env-files").mkdir(exist_ok=True)
    env.update(
        MY_CLAW_ENV_DIR=str(tmp / "no-env-files"),
        AGENT_HOST="127.0.0.1",
        AGENT_API_KEY="",
        ZAI_API_KEY="",
        FILES_ALLOWED_DIRS=str(tmp / "files"),
        SCREENSHOT_DIR=str(tmp / "screenshots"),
        MEDIA_DIR=str(tmp / "media"),
        LOG_LEVEL="INFO",
        # Tests that count model calls would count the warm-up too; tests/test_model_cost.py turns it on.
        OLLAMA_WARM_UP="false",
    )
    env.update(overrides)
    return env


def spawn_service(
    env: dict[str, str], log_path: Path, cwd: Path = AGENT_DIR, python: str = sys.executable
) -> subprocess.Popen[bytes]:
    """`python main.py` in `cwd` (an agent/ folder) with `env`, its output and errors written to `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen([python, "main.py"], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for_health(process: subprocess.Popen[bytes], url: str, timeout_s: float, probe_timeout_s: float = 1) -> bool:
    """Whether `url`/health answered 200 within timeout_s; False as soon as the process has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/health", timeout=probe_timeout_s).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def stop_process(process: subprocess.Popen[Any], timeout_s: float = 10) -> None:
    """Terminate, and kill what is still running after timeout_s."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)


def start_service(tmp: Path, wait: bool = True, **overrides: str) -> Service:
    port = free_port()
    log_path = tmp / f"agent-{port}.log"
    process = spawn_service(service_env(tmp, AGENT_PORT=str(port), **overrides), log_path)
    service = Service(f"http://127.0.0.1:{port}", process, log_path, overrides.get("AGENT_API_KEY") or None)
    if wait and not wait_for_health(process, service.url, 60):
        if process.poll() is not None:
            raise RuntimeError(f"agent exited with {process.returncode}:\n{service.log_text()}")
        service.stop()
        raise RuntimeError(f"agent did not start:\n{service.log_text()}")
    return service


@pytest.fixture(scope="session")
def fake_ollama() -> Iterator[FakeOllama]:
    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_zai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(ZAI_KEY).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_searxng() -> Iterator[FakeSearxng]:
    with FakeSearxng() as server:
        yield server


@pytest.fixture(scope="session")
def fake_gateway() -> Iterator[FakeGateway]:
    """The gateway's reminders API, expecting the service's AGENT_API_KEY."""
    server = FakeGateway(API_KEY).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def service(
    tmp_path_factory: pytest.TempPathFactory,
    fake_ollama: FakeOllama,
    fake_zai: FakeOpenAI,
    fake_searxng: FakeSearxng,
    fake_gateway: FakeGateway,
) -> Iterator[Service]:
    """The real service, with an API key, the Z.ai route and the gateway pointed at their fakes, a short run timeout."""
    running = start_service(
        tmp_path_factory.mktemp("agent"),
        AGENT_API_KEY=API_KEY,
        OLLAMA_BASE_URL=fake_ollama.url,
        SEARXNG_URL=fake_searxng.url,
        ZAI_API_KEY=ZAI_KEY,
        ZAI_BASE_URL=f"{fake_zai.url}/api/paas/v4",
        AGENT_TIMEOUT_S="6",
        AGENT_MAX_CONCURRENCY="2",
        AGENT_TOOLS="web_search,file_system,os_exec,analyze_image,schedule_message,send_file",
        GATEWAY_URL=fake_gateway.url,
    )
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _reset_fakes(request: pytest.FixtureRequest) -> None:
    """Each test starts with empty scripts and request logs on whichever fakes it uses."""
    for name in ("fake_ollama", "fake_zai", "fake_gateway"):
        if name in request.fixturenames:
            server = request.getfixturevalue(name)
            httpx.post(f"{server.url}/_fake/reset")
    if "fake_searxng" in request.fixturenames:
        searx = request.getfixturevalue("fake_searxng")
        searx.mode = "ok"
        searx.queries.clear()
