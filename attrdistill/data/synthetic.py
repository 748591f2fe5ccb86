"""The built-in task: find the two decisive words hidden among distractors, then combine them.

Each example is a short story (15-40 words). A traveller takes one tool and goes to one place;
the label says what the trip is for: the tool's purpose and the place's quality, e.g.
("lantern", "cave") -> "shine dark". It needs both decisive words, and no label word occurs in any
input. Thirty tools share six purposes and thirty places six qualities (a fixed, arbitrary
assignment), and the stories also carry look-alike clauses with thirty everyday objects and
thirty town spots ("Grace packed a scarf", "they hiked to the market") plus filler. With little
data, which noun decides the label is the hard part (credit assignment); a teacher trained on a
lot of data learns it. Every example records the word indices (attrdistill.words) of its two
decisive words, so attributions can be scored against ground truth.

    examples = generate(300, seed=1)
"""

from __future__ import annotations

import random
import re

from attrdistill.data.example import Example
from attrdistill.modeling.words import word_spans

PURPOSES = ["shine", "steer", "climb", "boil", "reach", "build"]
QUALITIES = ["wet", "dark", "shady", "salty", "low", "high"]
_TOOLS = ("lantern compass rope kettle ladder hammer shovel net axe saw bucket brush needle whistle blanket "
          "tent flask drill knife spoon paddle sled kite drum flute lens magnet mirror anchor candle").split()
_PLACES = ("river cave forest harbor valley tower island desert meadow canyon glacier marsh beach cliff lake "
           "swamp volcano prairie reef lagoon orchard quarry ridge dune creek bay summit grove moor delta").split()
TOOLS = {t: PURPOSES[i % len(PURPOSES)] for i, t in enumerate(_TOOLS)}
PLACES = {p: QUALITIES[i % len(QUALITIES)] for i, p in enumerate(_PLACES)}
NAMES = ["Anna", "Tom", "Maria", "Ben", "Lucy", "Omar", "Grace", "Leo"]
OBJECTS = ("sandwich scarf book bottle camera umbrella jacket hat letter ticket coin pencil notebook pillow glove "
           "sock apple pear cake loaf radio clock wallet key basket bag box cup plate towel").split()
SPOTS = ("market station bakery school library garden museum church office cafe hotel bank theater stadium "
         "hospital airport park shop pharmacy factory zoo gym studio college temple castle palace bridge post "
         "bus").split()

# {t}: the slot word; {n}: a name. Decisive words only ever fill TAKE (tool) and GO (place) slots;
# everyday objects and spots fill every kind of slot.
TAKE = ["{n} packed a {t}", "{n} carried the {t}", "{n} brought a {t} along", "{n} took the {t}"]
NOT_TAKE = ["{n} forgot the {t}", "{n} left a {t} at home", "a broken {t} stayed in the shed",
            "{n} sold the old {t}"]
GO = ["they hiked to the {t}", "{n} set off for the {t}", "the trip ended at the {t}", "{n} walked to the {t}"]
NOT_GO = ["{n} once lived near a {t}", "a photo of a {t} hung on the wall", "{n} had never seen the {t}",
          "{n} talked about the {t}"]
FILLERS = ["{n} smiled at a friend", "the morning was calm and grey", "a dog barked in the distance",
           "{n} ate an apple", "everyone was a little tired", "the old car made a loud noise",
           "{n} counted the coins twice", "a bird sang on the fence", "it was late in the afternoon",
           "the wind was cold", "{n} laughed at a joke", "nobody was in a hurry"]


def _clause(rng: random.Random, templates: list[str], slot: str, decisive: bool = False) -> tuple[str, str | None]:
    """(clause text, the slot word if it is decisive here)."""
    text = rng.choice(templates).format(n=rng.choice(NAMES), t=slot)
    return re.sub(r"\ba (?=[aeiou])", "an ", text), slot if decisive else None


def _example(rng: random.Random, idx: str) -> Example:
    tool, place = rng.choice(_TOOLS), rng.choice(_PLACES)
    while True:
        clauses = [_clause(rng, TAKE, tool, True), _clause(rng, GO, place, True)]
        for _ in range(rng.randint(2, 6)):
            template = rng.choice([TAKE, NOT_TAKE, GO, NOT_GO, FILLERS, FILLERS])
            clauses.append(_clause(rng, template, rng.choice(OBJECTS if template in (TAKE, NOT_TAKE) else SPOTS)))
        rng.shuffle(clauses)
        text, decisive_chars = _join(rng, clauses)
        n_words = sum(1 for a, b in word_spans(text) if text[a:b].isalnum())
        if 15 <= n_words <= 40:
            break
    spans = word_spans(text)
    decisive = [spans.index(decisive_chars[key]) for key in (tool, place)]
    return Example(id=idx, input=text, label=f"{TOOLS[tool]} {PLACES[place]}", decisive=decisive)


def _join(rng: random.Random, clauses: list[tuple[str, str | None]]) -> tuple[str, dict[str, tuple[int, int]]]:
    """Clauses -> sentences of one or two clauses; returns the text and each decisive word's span."""
    text, spans = "", {}
    i = 0
    while i < len(clauses):
        group = clauses[i:i + rng.choice([1, 2])]
        i += len(group)
        for j, (clause, key) in enumerate(group):
            sep = "" if not text else (" " if j == 0 else rng.choice([", and ", " and ", ", while "]))
            if j == 0:
                clause = clause[0].upper() + clause[1:]
            if key:
                pos = len(text) + len(sep) + re.search(rf"\b{key}\b", clause).start()
                spans[key] = (pos, pos + len(key))
            text += sep + clause
        text += "."
    return text, spans


def generate(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    return [_example(rng, f"s{seed}-{i}") for i in range(n)]
