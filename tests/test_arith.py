"""The safe SVAMP equation evaluator: values, precedence, and hostile input that must not raise."""

from __future__ import annotations

import time

import pytest

from attrdistill.evaluate.arith import MAX_DEPTH, MAX_LENGTH, evaluate, same_value


@pytest.mark.parametrize("expr, value", [
    ("( 84.0 / 2.0 )", 42.0),
    ("(10 * 45)", 450.0),
    ("7", 7.0),
    ("3.5", 3.5),
    ("5.", 5.0),
    (".5", 0.5),
    ("( 76.0 - 25.0 )", 51.0),
    ("((12.0 + 3.0) * 2.0)", 30.0),
    ("\t1 +\n2 ", 3.0),
])
def test_values(expr: str, value: float) -> None:
    assert evaluate(expr) == pytest.approx(value)


@pytest.mark.parametrize("expr, value", [
    ("2 + 3 * 4", 14.0),
    ("(2 + 3) * 4", 20.0),
    ("10 - 4 - 3", 3.0),        # left associative
    ("100 / 10 / 5", 2.0),
    ("8 - 2 * 3 + 1", 3.0),
    ("2 * 3 / 4", 1.5),
])
def test_precedence_and_associativity(expr: str, value: float) -> None:
    assert evaluate(expr) == pytest.approx(value)


@pytest.mark.parametrize("expr, value", [
    ("-3", -3.0),
    ("--3", 3.0),
    ("-(2 + 3)", -5.0),
    ("4 * -2", -8.0),
    ("2 - -2", 4.0),
    ("-2 * -3", 6.0),
])
def test_unary_minus(expr: str, value: float) -> None:
    assert evaluate(expr) == pytest.approx(value)


def test_same_value() -> None:
    assert same_value("( 84.0 / 2.0 )", "(84/2)")
    assert same_value("(10 * 45)", "( 10.0 * 45.0 )")
    assert same_value("450", "(10 * 45)")
    assert same_value("(1 / 3)", "0.33333")           # within 1e-4 absolute
    assert same_value("1000000", "1000001")           # within 1e-4 relative
    assert not same_value("(10 * 45)", "(10 + 45)")
    assert not same_value("0.5", "0.6")
    assert not same_value("(10 * x)", "(10 * x)")      # neither side evaluates
    assert not same_value("", "")
    assert not same_value("1/0", "1/0")


@pytest.mark.parametrize("expr", [
    "", "   ", "(", ")", "()", "(1 + 2", "1 + 2)", "1 +", "* 2", "1 2", "1 ** 2", "1 ^ 2", "2 (3)",
    "1..2", "1.2.3", ".", "- ", "+3", "1e5", "0x10", "abc", "(some - 8)", "(2 * x)", "(14, 21)",
    "(8 / 4) and (6 / 4)", "1 % 2", "½", "٣", "１", "1_000", "nan", "inf", "None",
])
def test_malformed_is_none(expr: str) -> None:
    assert evaluate(expr) is None


HOSTILE = [
    "__import__('os')",
    "__import__('os').system('echo hacked')",
    "1/0",
    "(5 - 5) / (3 - 3)",
    "1 / -0",
    "9**9**9",
    "9" * 400,                                  # float overflow: inf
    "9" * 300 + " * " + "9" * 300,              # over the length limit
    "1" + "0" * 300 + " * 1" + "0" * 20,        # finite operands, infinite product
    "1" * 100_000,
    "(" * 100_000 + "1" + ")" * 100_000,
    "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1),
    "-" * 400 + "1",
    "(" * 200,
    "lambda: 0",
    "[].__class__",
    "\x00",
    "1\x00",
]


@pytest.mark.parametrize("expr", HOSTILE)
def test_hostile_input_is_none_quickly(expr: str) -> None:
    start = time.perf_counter()
    assert evaluate(expr) is None
    assert not same_value(expr, "1")
    assert time.perf_counter() - start < 0.5


def test_limits_are_inclusive_and_finite() -> None:
    assert evaluate("(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH) == 1.0
    assert evaluate("1" + " " * (MAX_LENGTH - 1)) == 1.0
    assert evaluate("1" + " " * MAX_LENGTH) is None


@pytest.mark.parametrize("value", [None, 42, 4.2, b"1 + 1", ["1"]])
def test_non_strings_are_none(value: object) -> None:
    assert evaluate(value) is None  # type: ignore[arg-type]
    assert not same_value(value, "1")  # type: ignore[arg-type]
