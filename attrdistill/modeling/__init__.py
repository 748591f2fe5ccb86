"""Models and their inputs: loading and building models (models.py), cutting blocks (pruning.py), the
features a model reads in either layout (features.py), the word split every score is given in (words.py) and
the templates inputs are built with, whose own words are format, not content (template.py)."""
