"""Words a learner reads (issue 22 §4): the project's original write-up is called what it is (the
TinyGPT/TinyTorch design summary), never "the seed"; "seed" stays for random seeds.

User-facing text is every docs page, every README, the examples, and every string constant in
the packages' sources (docstrings, CLI help, messages); comments are not scanned.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The write-up senses of "seed". Random-seed uses ("--seed", "seed=0", "the same seed gives ...")
# match none of them.
WRITE_UP = re.compile(
    r"\bseed['’]s\b"                                    # the seed's model / claim / figure
    r"|\(the \"?seed\"?\)|\bfrom the seed\b|\band from the seed\b"
    r"|\bthe seed (?:TinyGPT|model|recipe|claimed|printed|used|example|write-up|summary)\b"
    r"|\bseed (?:TinyGPT|model|recipe|write-up)\b"
    r"|--recipe seed\b|\|seed\]"
    r"|machines? this project is developed on",
    re.IGNORECASE,
)

def user_facing_texts():
    """(file, line, text) of everything a user reads."""
    pages = sorted(p for p in (ROOT / "docs").rglob("*.md"))
    pages += [ROOT / "README.md", *sorted(ROOT.glob("packages/*/README.md")), ROOT / "examples" / "README.md"]
    for page in pages:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            yield page, number, line
    sources = sorted(ROOT.glob("packages/*/src/**/*.py")) + sorted((ROOT / "examples").glob("*.py"))
    for source in sources:
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield source, node.lineno, node.value


def test_the_pattern_tells_the_write_up_from_random_seeds():
    for text in ("the seed's model", "Coming from PyTorch (and from the seed)", "The seed claimed",
                 "--recipe seed", "(the seed TinyGPT)", "[--recipe nanogpt-cpu|seed]"):
        assert WRITE_UP.search(text), text
    for text in ("--seed 0", "the same seed gives the same weights", "seed=1337", "manual_seed(0)",
                 "a random seed", "DataLoader(seed=s) shuffles", "Seed of the weights"):
        assert not WRITE_UP.search(text), text


def test_no_user_facing_text_calls_the_write_up_the_seed():
    found = []
    for path, line, text in user_facing_texts():
        rel = path.relative_to(ROOT).as_posix()
        for match in WRITE_UP.finditer(text):
            found.append(f"{rel}:{line}: ...{text[max(0, match.start() - 30):match.end() + 30]!r}...")
    assert not found, "say 'the design summary' (or drop it), not 'the seed':\n" + "\n".join(found)
