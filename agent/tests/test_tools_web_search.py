from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.fakes.searxng import FakeSearxng
from tools.web_search import WebSearchTool


@pytest.fixture
def searxng() -> Iterator[FakeSearxng]:
    with FakeSearxng() as fake:
        yield fake


def test_web_search_formats_numbered_results_with_title_url_snippet(searxng: FakeSearxng) -> None:
    result = WebSearchTool(searxng.url)(query="python 3.13 release")
    assert result.startswith(
        "1. What's New In Python 3.13\n   https://docs.python.org/3/whatsnew/3.13.html\n   This article"
    )
    assert "2. Python Release Python 3.13.0\n   https://www.python.org/downloads/release/python-3130/" in result
    assert "3. PEP 719" in result


def test_web_search_sends_query_and_json_format(searxng: FakeSearxng) -> None:
    WebSearchTool(searxng.url + "/")(query="café & crème ?")
    assert searxng.queries == ["café & crème ?"]
    assert searxng.formats == ["json"]


def test_web_search_limits_results_to_max_results(searxng: FakeSearxng) -> None:
    result = WebSearchTool(searxng.url, max_results=2)(query="python")
    assert "2. " in result and "3. " not in result


def test_web_search_explains_json_format_disabled_on_403(searxng: FakeSearxng) -> None:
    searxng.mode = "forbidden"
    result = WebSearchTool(searxng.url)(query="python")
    assert result.startswith("ERROR:")
    assert "search.formats" in result and "settings.yml" in result and "json" in result


def test_web_search_explains_rate_limit_on_429(searxng: FakeSearxng) -> None:
    searxng.mode = "rate_limited"
    result = WebSearchTool(searxng.url)(query="python")
    assert result.startswith("ERROR:") and "429" in result and "limiter" in result


def test_web_search_says_no_results_with_suggestions_and_failed_engines(searxng: FakeSearxng) -> None:
    searxng.mode = "empty"
    searxng.suggestions = ["python release"]
    searxng.unresponsive_engines = [["google", "timeout"]]
    result = WebSearchTool(searxng.url)(query="pyhton relaese")
    assert result.startswith("No results")
    assert "python release" in result and "google" in result


def test_web_search_reports_other_http_errors(searxng: FakeSearxng) -> None:
    result = WebSearchTool(searxng.url + "/not-searxng")(query="python")
    assert result.startswith("ERROR:") and "404" in result


def test_web_search_explains_searxng_not_running() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The port is closed again here, so the connection is refused.
    result = WebSearchTool(f"http://127.0.0.1:{port}", timeout_s=5)(query="python")
    assert result.startswith("ERROR:") and "not running" in result and f":{port}" in result


def test_web_search_refuses_empty_query(searxng: FakeSearxng) -> None:
    assert WebSearchTool(searxng.url)(query="  ").startswith("ERROR:")
    assert searxng.queries == []
