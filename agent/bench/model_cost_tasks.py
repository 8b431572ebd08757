"""The fixed task set of the model-cost bench (bench/bench_model_cost.py): six turns with their scripted CodeAgent
answers, and the files two of them read (a 300 KB text file, a 1920x1080 photo)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

TEXT_FILE_BYTES = 300_000


def code_answer(thought: str, code: str) -> str:
    return f"Thought: {thought}\n<code>\n{code}\n</code>"


def task_set(files: Path) -> list[dict[str, Any]]:
    """The turns, in order: name, /run body (history filled in later for the second "Bonjour"), scripted answers."""
    text_path = files / "notes.txt"
    photo_path = files / "photo.png"
    return [
        {"name": "bonjour (first after start)", "body": {"message": "Bonjour"}, "answers": []},
        {"name": "bonjour (with history)", "body": {"message": "Bonjour"}, "answers": [], "history_of": 0},
        {
            "name": "arithmetic (1 step)",
            "body": {"message": "Combien font 17 fois 23 ?"},
            "answers": [code_answer("17 × 23 = 391.", 'final_answer("17 fois 23 font 391.")')],
        },
        {
            "name": "web search (2 steps)",
            "body": {"message": "Quelles sont les nouveautés de Python 3.13 ?"},
            "answers": [
                code_answer("I search the web.", 'print(web_search(query="Python 3.13 nouveautés"))'),
                code_answer(
                    "The results list the release notes.",
                    'final_answer("Python 3.13 apporte un nouvel interpréteur interactif et un mode sans GIL '
                    'expérimental (docs.python.org/3/whatsnew/3.13.html).")',
                ),
            ],
        },
        {
            "name": "read a 300 KB file (2 steps)",
            "body": {"message": f"Résume le fichier {text_path}"},
            "answers": [
                code_answer(
                    "I read the file.", f'text = file_system(operation="read", path="{text_path}")\nprint(text)'
                ),
                code_answer("I have the text.", 'final_answer("Le fichier contient des notes de réunion répétées.")'),
            ],
        },
        {
            "name": "photo question (2 steps)",
            "body": {"message": f"Que montre la photo {photo_path} ?"},
            "answers": [
                code_answer(
                    "I look at the image.",
                    f'print(analyze_image(image_path="{photo_path}", question="Que montre cette photo ?"))',
                ),
                code_answer("The image was described.", 'final_answer("Un carré rouge sur fond blanc.")'),
            ],
        },
    ]


def make_files(files: Path) -> None:
    files.mkdir(parents=True, exist_ok=True)
    line = "Réunion du lundi : point sur le budget, les livraisons, le planning et les congés de l'équipe. "
    text = "".join(f"{i:05d} {line}\n" for i in range(TEXT_FILE_BYTES // (len(line.encode()) + 7) + 1))
    (files / "notes.txt").write_text(text[:TEXT_FILE_BYTES], encoding="utf-8")
    image = Image.new("RGB", (1920, 1080), "white")
    ImageDraw.Draw(image).rectangle((660, 240, 1260, 840), fill="red")
    image.save(files / "photo.png")
