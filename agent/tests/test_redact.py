"""The redactor: which variables hold secrets, whole-text and streamed redaction (properties), the scrubbed env."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from logs import JsonFormatter
from redact import REDACTED, Redactor, is_secret_name, load_redactor, scrubbed_environ, secret_values

# Real secrets are letters, digits and a few punctuation marks (hex, base64, URL-safe tokens).
SECRET_ALPHABET = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_+/=.")
secret_text = st.text(SECRET_ALPHABET, min_size=8, max_size=40).filter(lambda s: s not in REDACTED)
any_text = st.text(max_size=200)


@pytest.mark.parametrize(
    "name",
    [
        "AGENT_API_KEY",
        "ZAI_API_KEY",
        "WEBCHAT_TOKEN",
        "CRON_SECRET",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_ACCESS_TOKEN",
        "WHATSAPP_VERIFY_TOKEN",
        "NEXTCLOUD_BOT_SECRET",
        "BENCH_AGENT_API_KEY",
        "GITHUB_TOKEN",
        "PGPASSWORD",
        "KEY",
        "OPENAI_APIKEY",
        "zai_api_key",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["AGENT_HOST", "PATH", "KEYBOARD_LAYOUT", "MONKEY", "DATABASE_URL", "AWS_WEB_IDENTITY_TOKEN_FILE", "PWD", "HOME"],
)
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


def test_secret_values_come_from_both_env_files_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WHATSAPP_ACCESS_TOKEN=from-env-file-0123\nAGENT_PORT=80000000\n")
    (tmp_path / ".env.local").write_text(
        'export CRON_SECRET="quoted-cron-secret-1"\nWEBCHAT_TOKEN=short\n# NEXTCLOUD_BOT_SECRET=commented-out\n'
    )
    found = secret_values(
        [tmp_path / ".env", tmp_path / ".env.local", tmp_path / "missing"],
        {"GITHUB_TOKEN": "ghp_from_the_process", "HOME": "/home/someone-long"},
    )
    assert found == {"from-env-file-0123", "quoted-cron-secret-1", "ghp_from_the_process"}


def test_redact_replaces_every_occurrence_longest_first() -> None:
    redactor = Redactor(["abcdefgh", "abcdefghijkl", None, "short", "redacted"])
    assert redactor.count == 2 and redactor.longest == 12
    assert redactor.redact("x abcdefghijkl y abcdefgh z") == f"x {REDACTED} y {REDACTED} z"
    assert redactor.redact("the word redacted stays") == "the word redacted stays"


def test_a_redactor_without_secrets_changes_nothing() -> None:
    redactor = load_redactor([], {})
    assert redactor.redact("anything at all") == "anything at all"
    stream = redactor.stream()
    assert stream.feed("piece") == "piece" and stream.flush() == ""


def test_scrubbed_environ_drops_secret_names_and_values_that_carry_a_secret() -> None:
    redactor = Redactor(["s3cr3t-value-123"])
    environ = {
        "PATH": "/usr/bin",
        "WEBCHAT_TOKEN": "short",
        "DATABASE_URL": "postgres://me:s3cr3t-value-123@db",
        "HOME": "/home/me",
    }
    assert scrubbed_environ(environ, redactor) == {"PATH": "/usr/bin", "HOME": "/home/me"}


@st.composite
def text_with_secrets(draw: st.DrawFn) -> tuple[list[str], str]:
    secrets = draw(st.lists(secret_text, min_size=1, max_size=4, unique=True))
    pieces = draw(st.lists(any_text, min_size=1, max_size=6))
    text = pieces[0]
    for piece in pieces[1:]:
        text += draw(st.sampled_from(secrets)) + piece
    return secrets, text


def cuts(text: str, points: list[int]) -> list[str]:
    bounds = sorted({0, len(text), *(p % (len(text) + 1) for p in points)})
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@given(text_with_secrets())
@settings(max_examples=300)
def test_no_secret_survives_redaction(case: tuple[list[str], str]) -> None:
    secrets, text = case
    redacted = Redactor(secrets).redact(text)
    for secret in secrets:
        assert secret not in redacted


@given(text_with_secrets(), st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
@settings(max_examples=300)
def test_streamed_redaction_equals_whole_redaction_however_the_text_is_cut(
    case: tuple[list[str], str], points: list[int]
) -> None:
    secrets, text = case
    redactor = Redactor(secrets)
    stream = redactor.stream()
    pieces = [stream.feed(piece) for piece in cuts(text, points)]
    streamed = "".join(pieces) + stream.flush()
    assert streamed == redactor.redact(text)
    for secret in secrets:
        assert secret not in streamed
        # Nothing emitted before the end ends with the start of a secret that the next piece completes.
        assert all(secret not in piece for piece in pieces)


@given(st.lists(secret_text, max_size=4), any_text, st.lists(st.integers(min_value=0, max_value=300), max_size=10))
def test_text_without_secrets_is_unchanged_whole_and_streamed(secrets: list[str], text: str, points: list[int]) -> None:
    assume(not any(secret in text for secret in secrets))
    redactor = Redactor(secrets)
    assert redactor.redact(text) == text
    stream = redactor.stream()
    assert "".join(stream.feed(piece) for piece in cuts(text, points)) + stream.flush() == text


def test_log_lines_carry_no_known_secret() -> None:
    formatter = JsonFormatter(Redactor(["s3cr3t-value-123"]))
    record = logging.LogRecord("agent", logging.INFO, __file__, 1, "startup_refused", None, None)
    record.reason = 'bad value "s3cr3t-value-123"'
    line = json.loads(formatter.format(record))
    assert line["event"] == "startup_refused" and line["reason"] == 'bad value "[redacted]"'
