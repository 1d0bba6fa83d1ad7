"""Literal text in Markdown elements: what a user typed or a model wrote shows as typed.

Streamlit renders titles, headers, captions, metric labels and messages as
Markdown, with GitHub extensions (bare URLs and e-mail addresses become links),
LaTeX between `$`, emoji and icon shortcodes between `:` and coloured text
(`:red[...]`). Every title, transcript line and summary item that goes into one
of those elements goes through `literal()` first; tables (st.dataframe),
st.text and st.code are literal already.
"""

from __future__ import annotations

import re
import string

_ESCAPE = {ord(ch): "\\" + ch for ch in string.punctuation}
"""CommonMark lets every ASCII punctuation character be escaped with a backslash
and then shows the character alone: escaping them all is exact, never a stray backslash."""
WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(www)(?=\\\.)|(?<=[a-z0-9])(?=\\:\\/\\/)|(?=\\@)")
"""Where GitHub's bare-link rule would start a link (`www.`, `scheme://`, `name@`): the
rule runs after escapes are resolved, so an invisible word joiner goes there instead."""


def literal(text: str | None) -> str:
    """`text` on one line, escaped so a Markdown element shows exactly these characters."""
    escaped = " ".join(str(text or "").split()).translate(_ESCAPE)
    return _AUTOLINK.sub(lambda m: (m.group(1) or "") + WORD_JOINER, escaped)


def literal_marked(pieces: list[tuple[str, bool]]) -> str:
    """Pieces of one line as literal Markdown, the marked ones in bold (search matches);
    the spaces between pieces are kept."""
    out = []
    for piece, marked in pieces:
        core = literal(piece)
        if not core:
            out.append(" " if piece else "")
            continue
        core = f"**{core}**" if marked else core
        out.append((" " if piece[0].isspace() else "") + core + (" " if piece[-1].isspace() else ""))
    return "".join(out).strip()
