"""Web search through the owner's SearXNG instance (JSON API)."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
from smolagents import Tool

from tools.common import log_outcome

logger = logging.getLogger(__name__)

MAX_SNIPPET = 400


class WebSearchTool(Tool):
    name = "web_search"
    description = """Search the web; returns the top results (title, URL, snippet).
Use it for current or uncertain facts. Give short keywords. To read a page: requests.get(url).text.
Example: web_search(query="weather Lisbon tomorrow")"""
    inputs = {"query": {"type": "string", "description": "Search keywords."}}
    output_type = "string"

    def __init__(self, searxng_url: str, timeout_s: float = 15, max_results: int = 5) -> None:
        super().__init__()
        self.searxng_url = searxng_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_results = max(1, max_results)

    def forward(self, query: str) -> str:
        started = time.monotonic()
        return log_outcome(logger, self.name, started, self._search(query))

    def _search(self, query: str) -> str:
        if not query or not query.strip():
            return 'ERROR: empty query. Pass the keywords to search for, e.g. query="best hiking trails Madeira".'
        try:
            response = httpx.get(
                f"{self.searxng_url}/search",
                params={"q": query.strip(), "format": "json"},
                headers={"Accept": "application/json"},
                timeout=self.timeout_s,
            )
        except httpx.ConnectError:
            return (
                f"ERROR: SearXNG is not running at {self.searxng_url} (connection refused), so web search is unavailable. "
                "Tell the owner to start it (for example `docker run -d -p 8888:8080 searxng/searxng`, with `json` "
                "added to `search.formats` in its settings.yml) or to fix SEARXNG_URL. Meanwhile answer from what you know."
            )
        except httpx.TimeoutException:
            return f"ERROR: SearXNG at {self.searxng_url} did not answer within {self.timeout_s:g} s. Try again once, with a shorter query."
        except httpx.HTTPError as exc:
            return f"ERROR: could not reach SearXNG at {self.searxng_url} ({type(exc).__name__}). Check SEARXNG_URL."
        return _interpret(response, self.searxng_url, self.max_results)


def _interpret(response: httpx.Response, url: str, max_results: int) -> str:
    if response.status_code == 403:
        return (
            f"ERROR: SearXNG at {url} refused JSON output (HTTP 403): its JSON format is disabled. "
            "Tell the owner to add `json` to `search.formats` in SearXNG's settings.yml "
            "(formats: [html, json]) and restart SearXNG."
        )
    if response.status_code == 429:
        return (
            f"ERROR: SearXNG at {url} is rate-limiting requests (HTTP 429). Wait a minute before searching again; "
            "on the owner's own instance, `server.limiter: false` in settings.yml turns this off."
        )
    if response.status_code != 200:
        return f"ERROR: SearXNG at {url} answered HTTP {response.status_code}. Try again later or check its logs."
    try:
        body: dict[str, Any] = response.json()
        results = [r for r in body.get("results", []) if isinstance(r, dict) and r.get("url")]
    except (ValueError, AttributeError):
        return f"ERROR: SearXNG at {url} did not return JSON. Check that SEARXNG_URL points at SearXNG itself."
    if not results:
        return _no_results(body)
    return "\n\n".join(_entry(n, r) for n, r in enumerate(results[:max_results], start=1))


def _entry(number: int, result: dict[str, Any]) -> str:
    title = (result.get("title") or "").strip() or "(no title)"
    snippet = " ".join((result.get("content") or "").split())
    if len(snippet) > MAX_SNIPPET:
        snippet = snippet[:MAX_SNIPPET].rstrip() + "..."
    lines = [f"{number}. {title}", f"   {result['url']}"]
    if snippet:
        lines.append(f"   {snippet}")
    return "\n".join(lines)


def _no_results(body: dict[str, Any]) -> str:
    text = "No results found. Try fewer or different keywords."
    suggestions = [s for s in body.get("suggestions") or [] if isinstance(s, str)]
    if suggestions:
        text += f" Suggested searches: {', '.join(suggestions[:5])}."
    failed = [e[0] for e in body.get("unresponsive_engines") or [] if isinstance(e, list) and e]
    if failed:
        text += f" These search engines did not answer: {', '.join(map(str, failed))} (a network problem is likely)."
    return text
