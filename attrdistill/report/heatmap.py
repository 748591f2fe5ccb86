"""Word scores made visible: a coloured line for the terminal and an HTML heat-map.

    print(terminal(row.words, row.scores, row.top))          # ANSI background shades
    Path("ex.html").write_text(html_page([html_words(row.words, row.scores, row.top)]))

Shades are relative to the example's highest score; the rationale (top-k) words are also
underlined and bold, so the choice is visible without colour too; the input format's words
(modeling/template.py) are italic; html_words can also box the task's true (decisive) words.
"""

from __future__ import annotations

import html
from typing import Sequence

# Light to dark red backgrounds of the 256-colour palette: readable with dark text on either theme.
_SHADES = (231, 224, 217, 210, 203, 196)


def _levels(scores: Sequence[float]) -> list[float]:
    top = max((abs(s) for s in scores), default=0.0)
    return [abs(s) / top if top > 0 else 0.0 for s in scores]


def terminal(words: Sequence[str], scores: Sequence[float], top: Sequence[int] = (),
             scaffold: Sequence[int] = ()) -> str:
    """The words with ANSI background shades by score; rationale words bold and underlined, the input format's
    words (never rationale words) italic."""
    chosen, form = set(top), set(scaffold)
    out = []
    for i, (word, level) in enumerate(zip(words, _levels(scores))):
        shade = _SHADES[min(int(level * len(_SHADES)), len(_SHADES) - 1)]
        style = "1;4;" if i in chosen else "3;" if i in form else ""
        out.append(f"\033[{style}30;48;5;{shade}m{word}\033[0m")
    return " ".join(out)


def html_words(words: Sequence[str], scores: Sequence[float], top: Sequence[int] = (),
               truth: Sequence[int] = (), scaffold: Sequence[int] = ()) -> str:
    """One <p> of words shaded by score (title = the score); rationale words underlined and bold,
    `truth` words (e.g. the task's decisive words) boxed, the input format's words italic."""
    chosen, true, form = set(top), set(truth), set(scaffold)
    spans = []
    for i, (word, score, level) in enumerate(zip(words, scores, _levels(scores))):
        classes = " ".join(c for c, on in (("top", i in chosen), ("truth", i in true), ("scaffold", i in form))
                           if on)
        cls = f' class="{classes}"' if classes else ""
        spans.append(f'<span{cls} style="background: rgba(220, 38, 38, {level:.2f})" '
                     f'title="{score:.4g}">{html.escape(word)}</span>')
    return '<p class="heat">' + " ".join(spans) + "</p>"


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #111; }
.heat span { padding: 0.1rem 0.15rem; border-radius: 0.2rem; line-height: 1.9; }
.heat span.top { font-weight: bold; text-decoration: underline; }
.heat span.truth { outline: 1.5px dashed #1d4ed8; outline-offset: 1px; }
.heat span.scaffold { font-style: italic; color: #555; }
.meta { color: #555; font-size: 0.9rem; }
"""


def html_page(blocks: Sequence[str], title: str = "attrdistill: word scores", style: str = "") -> str:
    """A self-contained HTML page (inline CSS, no network) holding the given blocks; `style` adds CSS."""
    body = "\n".join(blocks)
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}{style}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")
