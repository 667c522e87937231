"""Reading a written report back: its tags, its data block, its typed arrays."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import numpy as np


class Tags(HTMLParser):
    """Every start tag with its attributes; script bodies by index."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self._in_script: dict | None = None
        self._buf: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script":
            self._in_script, self._buf = a, []

    def handle_data(self, data):
        if self._in_script is not None:
            self._buf.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, "".join(self._buf)))
            self._in_script = None


def parse(text: str) -> Tags:
    p = Tags()
    p.feed(text)
    p.close()
    return p


def data_block(text: str) -> dict:
    blocks = [body for attrs, body in parse(text).scripts if attrs.get("id") == "report-data"]
    assert len(blocks) == 1, f"expected one report-data block, found {len(blocks)}"
    return json.loads(blocks[0])


def decode(arr) -> np.ndarray:
    """A plotly typed-array spec (or a plain list) -> numpy."""
    if isinstance(arr, dict):
        dtype = {"f8": "<f8", "i4": "<i4", "f4": "<f4"}[arr["dtype"]]
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=dtype)
    return np.asarray(arr)


def without_scripts(text: str) -> str:
    """The page with the bodies of its <script> elements removed (plotly.js quotes URLs)."""
    return re.sub(r"(<script[^>]*>).*?(</script>)", r"\1\2", text, flags=re.S)
