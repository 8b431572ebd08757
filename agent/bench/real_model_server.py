"""A real small model behind the parts of Ollama's HTTP API that the agent uses, for `make bench`.

One GGUF file runs through llama-cpp-python (one `Llama` instance, one request at a time, like Ollama's single
slot, so llama.cpp reuses the KV cache of the prefix shared with the previous request). Spoken here:

- `GET /api/tags`, `GET /api/ps`, `GET /api/version`, `POST /api/show` (404 for another model name);
- `POST /api/chat`, NDJSON stream by default (`message.content` pieces, then a `done: true` line with
  `done_reason`, `prompt_eval_count`, `eval_count` and durations in nanoseconds) or one JSON body with
  `stream: false`; `POST /api/generate` likewise (`response` instead of `message`);
- `options.num_ctx` (default 4096 as Ollama on a CPU; another value reloads the model, as Ollama does),
  `options.num_predict` (-1: until the context is full), `options.stop`, `options.temperature`, `top_k`, `top_p`,
  `min_p`, `repeat_penalty`, `seed`; `keep_alive` (seconds, negative for ever, or a duration such as "30m"; a numeric
  string is a 400 as in Ollama; 0 unloads after the request); `think` (this model cannot think: `think: true` or a
  level is a 400 "... does not support thinking", `false` is accepted); an empty `messages`/`prompt` only loads
  (or, with `keep_alive: 0`, unloads) the model, `done_reason` "load"/"unload".

Messages are rendered with the model's own chat template (the GGUF's `tokenizer.chat_template`) and counted with its
own tokenizer. A prompt longer than `num_ctx` is cut as Ollama cuts it (oldest non-system messages dropped, system
messages kept, the last message always kept; if that is still too long, the head and tail of the tokens are kept),
and the request is recorded with `overflow: true`.

Every request is recorded (metadata only: token counts, seconds, options; no text) and `GET /_bench/requests`
returns the list; `GET /_bench/status` says how many model requests are under way; `POST /_bench/reset` empties
the list.

The model side lives in bench/real_model_host.py, the HTTP routes in bench/real_model_api.py; this module starts them.

Run alone: `python -m bench.real_model_server --model path/to/model.gguf --name smollm2:135m --port 0`; it prints
`READY <port>` once it listens.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path

from bench.real_model_api import Handler, ServerState
from bench.real_model_host import ModelHost
from tests.fakes.scripted import serve_until_interrupted

DEFAULT_NAME = "smollm2:135m"


class RealModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: ModelHost, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.state = ServerState(host=host, size=host.path.stat().st_size, digest=_digest(host.path))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="the GGUF file")
    parser.add_argument("--name", default=DEFAULT_NAME, help="the model name in /api/tags")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--extra-buffers",
        action="store_true",
        help="let llama.cpp use its AMX/repacked weight buffers (faster, if safe)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    server = RealModelServer(ModelHost(args.model, args.name, args.threads, args.extra_buffers), args.port)
    serve_until_interrupted(server)


if __name__ == "__main__":
    main()
