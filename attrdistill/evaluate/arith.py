"""Safe evaluation of SVAMP equations such as "( 84.0 / 2.0 )" or "(10 * 45)".

    evaluate("( 84.0 / 2.0 )")            # 42.0
    evaluate("__import__('os')")           # None: anything outside the grammar
    same_value("(10 * 45)", "( 10.0 * 45.0 )")   # True

Grammar (nothing else parses): numbers (ASCII digits, optional decimal point), binary + - * /,
unary minus and parentheses, with the usual precedence and left associativity:

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := "-" unary | primary
    primary := NUMBER | "(" expr ")"

A hand-written tokenizer and recursive-descent parser, never Python's eval, so hostile labels from
model output cannot run code. Neither function raises on any string.
"""

from __future__ import annotations

import math

MAX_LENGTH = 500   # characters; SVAMP equations are far shorter
MAX_DEPTH = 50     # nested parentheses plus chained unary minus

_DIGITS = frozenset("0123456789")
_OPERATORS = frozenset("+-*/()")
_SPACE = frozenset(" \t\r\n")


class _ParseError(Exception):
    """Internal: the expression is outside the grammar or its value is not a finite number."""


def _tokenize(expr: str) -> list[str]:
    tokens: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch in _SPACE:
            i += 1
        elif ch in _OPERATORS:
            tokens.append(ch)
            i += 1
        elif ch in _DIGITS or ch == ".":
            start = i
            while i < n and expr[i] in _DIGITS:
                i += 1
            if i < n and expr[i] == ".":
                i += 1
                while i < n and expr[i] in _DIGITS:
                    i += 1
            number = expr[start:i]
            if number == ".":
                raise _ParseError("lone decimal point")
            tokens.append(number)
        else:
            raise _ParseError(f"unexpected character {ch!r}")
    return tokens


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise _ParseError("not a finite number")
    return value


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise _ParseError("unexpected end of expression")
        self.pos += 1
        return token

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _ParseError("nested too deeply")

    def parse(self) -> float:
        value = self.expr()
        if self.peek() is not None:
            raise _ParseError(f"unexpected token {self.peek()!r}")
        return value

    def expr(self) -> float:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            right = self.term()
            value = _finite(value + right if op == "+" else value - right)
        return value

    def term(self) -> float:
        value = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            right = self.unary()
            if op == "*":
                value = _finite(value * right)
            elif right == 0:
                raise _ParseError("division by zero")
            else:
                value = _finite(value / right)
        return value

    def unary(self) -> float:
        if self.peek() == "-":
            self.take()
            self.nest()
            value = -self.unary()
            self.depth -= 1
            return value
        return self.primary()

    def primary(self) -> float:
        token = self.take()
        if token == "(":
            self.nest()
            value = self.expr()
            if self.take() != ")":
                raise _ParseError("expected ')'")
            self.depth -= 1
            return value
        if token in _OPERATORS:
            raise _ParseError(f"unexpected token {token!r}")
        # A very long digit string becomes inf here, which _finite rejects.
        return _finite(float(token))


def evaluate(expr: str) -> float | None:
    """The value of `expr`, or None when it is malformed, too long, too deep, divides by zero or is not finite."""
    if not isinstance(expr, str) or len(expr) > MAX_LENGTH:
        return None
    try:
        return _Parser(_tokenize(expr)).parse()
    except (_ParseError, ValueError, RecursionError):
        return None


def same_value(pred: str, gold: str, tol: float = 1e-4) -> bool:
    """Whether both expressions evaluate and agree within `tol`, relative or absolute (whichever is looser)."""
    a, b = evaluate(pred), evaluate(gold)
    if a is None or b is None:
        return False
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
