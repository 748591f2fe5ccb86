"""Judging models and rationales: greedy predictions (predict.py), answer matching (answers.py, arith.py),
and the analyses of rationale quality and prediction overlap (analysis.py)."""
