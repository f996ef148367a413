"""User text (file names, run names, recipes, error messages quoting them) inside Streamlit Markdown.

Streamlit renders every label, caption and alert as Markdown: a file named
``x`![a](http://host/p.png).csv`` would close a code span and make every browser that shows it
load the URL. :func:`md` makes any text literal; :func:`code` shows it as a code span that it
cannot close. Use one of them for every value a user (or a file) chose.
"""

from __future__ import annotations

import re
from typing import Any

# CommonMark lets a backslash escape any ASCII punctuation. Escaped: what makes links and images
# ([ ] ! < >), closes code spans (`), starts emphasis, math or tables (* ~ $ |) and the escape
# itself. Left alone, so that messages read the same in the source: . - : = ( ) ' " @ and
# underscores inside words (CommonMark never reads those as emphasis).
_SPECIAL = re.compile(r"[\\`*\[\]!<>~$|]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# Streamlit turns URLs and e-mail addresses in rendered text into links, escaped or not, even inside
# code spans: a zero-width space breaks "://", "www." and "@" (names rarely hold them).
_LINKISH = re.compile(r":(?=//)|(?<=[wW]{3})(?=\.)|(?=@)")
# At the start of a block these make a heading, a list item or a quote.
_LEADING = re.compile(r"^(#|[-+>]|\d+[.)])")


def _one_line(value: Any) -> str:
    text = " ".join(str(value).split())  # a line break could start a heading, list or quote
    return _LINKISH.sub(lambda m: m.group(0) + "\u200b", text)


def md(value: Any) -> str:
    """``value`` as literal text inside Markdown (characters with a Markdown meaning escaped, one line,
    no link made of it)."""
    text = _SPECIAL.sub(lambda m: "\\" + m.group(0), _one_line(value))
    return _LEADING.sub(lambda m: m.group(0)[:-1] + "\\" + m.group(0)[-1], text)


def code(value: Any) -> str:
    """``value`` as an inline code span: fenced by more backticks than it holds, so it cannot close it;
    no link is made of it."""
    text = _one_line(value)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
