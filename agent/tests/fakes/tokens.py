"""Real token counts with Qwen's own BPE vocabulary (shipped in the `dashscope` wheel), loaded offline with tiktoken.

The fakes and the benchmarks count with it so that what they report is what a qwen3 model would read; the agent
itself has no tokenizer for the model it runs and estimates conservatively (context.py).
"""

from __future__ import annotations

import base64
import importlib.resources
from functools import lru_cache

import tiktoken

# The split pattern of dashscope/tokenizers/qwen_tokenizer.py (the same as Qwen's own tokenizer).
_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


@lru_cache(maxsize=1)
def qwen_encoding() -> tiktoken.Encoding:
    raw = importlib.resources.files("dashscope").joinpath("resources/qwen.tiktoken").read_bytes()
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}
    return tiktoken.Encoding(name="qwen", pat_str=_PATTERN, mergeable_ranks=ranks, special_tokens={})


def count_tokens(text: str) -> int:
    return len(qwen_encoding().encode(text, disallowed_special=()))
