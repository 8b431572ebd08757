"""Sends one message to a running Gradio console through gradio_client, as a developer's script would.

`python -m tests.gradio_chat <console url> <message> [model]` writes the console's messages as JSON on stdout.
The gateway's system end-to-end suite (gateway/e2e/system.ts) drives the console with it.
"""

from __future__ import annotations

import argparse
import json
import sys

from gradio_client import Client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("message")
    parser.add_argument("model", nargs="?", default="smart")
    args = parser.parse_args()
    messages = Client(args.url, verbose=False).predict(args.message, args.model, api_name="/chat")
    sys.stdout.write(json.dumps(messages, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
