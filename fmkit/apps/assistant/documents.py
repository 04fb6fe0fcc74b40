"""A folder of manuals (.txt, .md, .html) cut into passages that keep their source file.

Passages follow paragraph boundaries and are packed up to ``chunk_chars``; a paragraph longer
than that is cut at sentence ends. HTML is reduced to its visible text (no scripts or styles).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from fmkit.errors import BadInputError

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")


@dataclass
class Chunk:
    id: str
    text: str
    source: str  # path inside the documents folder, with the passage number: "manual.md#3"


class _VisibleText(HTMLParser):
    SKIP = {"script", "style", "head", "noscript"}
    BLOCKS = {"p", "div", "li", "br", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def passages(text: str, chunk_chars: int) -> list[str]:
    """Paragraphs packed into passages of at most ``chunk_chars`` (a longer sentence stays whole)."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        if len(paragraph) <= chunk_chars:
            pieces.append(paragraph)
        else:
            pieces.extend(re.split(r"(?<=[.!?])\s+", paragraph))
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 1 + len(piece) <= chunk_chars:
            chunks[-1] += " " + piece
        else:
            chunks.append(piece)
    return chunks


def read_documents(folder: str, chunk_chars: int) -> list[Chunk]:
    """Every passage of every .txt/.md/.html file under ``folder``, in path order."""
    from fmkit.data.readers import decode_utf8

    root = Path(folder)
    if not root.is_dir():
        raise BadInputError(f"--documents {folder}: not a folder; pass a folder of .txt, .md or .html files")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise BadInputError(f"--documents {folder}: no .txt, .md or .html files in it")
    chunks = []
    for path in files:
        text = decode_utf8(path.read_bytes(), path)  # a non-UTF-8 file is named with its line and byte
        if path.suffix.lower() in (".html", ".htm"):
            text = visible_text(text)
        relative = path.relative_to(root).as_posix()
        for number, passage in enumerate(passages(text, chunk_chars), start=1):
            chunks.append(Chunk(f"doc:{relative}#{number}", passage, f"{relative}#{number}"))
    if not chunks:
        raise BadInputError(f"--documents {folder}: its files hold no text")
    return chunks
