"""resolve_inside: whatever the model passes, a returned path is inside the allowed folders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.paths import PathRefusedError, resolve_inside


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    base = tmp_path_factory.mktemp("confined")
    first, second, outside = base / "files", base / "more", base / "outside"
    for folder in (first / "sub", second, outside):
        folder.mkdir(parents=True)
    (outside / "secret.txt").write_text("s")
    (first / "link_out").symlink_to(outside)
    (first / "sub" / "up").symlink_to("../..")
    (first / "loop").symlink_to(first / "loop")
    (first / "ok_link").symlink_to(second)
    yield [first, second]


segments = st.sampled_from(
    ["..", ".", "sub", "up", "link_out", "loop", "ok_link", "secret.txt", "~", "é", "\x00", "a b", "", "x" * 300]
)
raw_paths = st.one_of(
    st.text(),
    st.tuples(
        st.sampled_from(["", "/", "~/", "/tmp/", "//"]), st.lists(segments | st.text(max_size=5), max_size=8)
    ).map(lambda t: t[0] + "/".join(t[1])),
)


@given(raw=raw_paths, follow_last=st.booleans())
def test_a_resolved_path_never_leaves_the_roots(roots: list[Path], raw: str, follow_last: bool) -> None:
    try:
        resolved = resolve_inside(raw, roots, follow_last=follow_last)
    except PathRefusedError as exc:
        assert str(exc).startswith("ERROR:")
        return
    real_roots = [Path(os.path.realpath(root)) for root in roots]
    assert resolved.is_absolute() and ".." not in resolved.parts
    assert any(resolved.is_relative_to(root) for root in real_roots), raw
    if follow_last:
        assert any(Path(os.path.realpath(resolved)).is_relative_to(root) for root in real_roots), raw
