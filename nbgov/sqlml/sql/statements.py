"""Token-level pre-pass over a cell: split statements, spot the model extensions.

Works on sqlglot's DuckDB tokenizer (strings, quoted identifiers and comments are
handled there), never on regexes. Ordinary SQL text is kept byte for byte so it
can be handed to DuckDB untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import sqlglot.expressions as exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from nbgov.errors import SqlmlError

PREDICT_PLACEHOLDER = "nbgov_predict__"
_DIALECT = DuckDB()


@dataclass(frozen=True)
class Statement:
    """One statement's original text and its tokens (offsets relative to ``text``)."""

    text: str
    tokens: tuple[Token, ...] | None  # None when the text could not be tokenized


@dataclass(frozen=True)
class CreateModel:
    name: str
    or_replace: bool
    path: str | None  # FROM 'path'
    variable: str | None  # FROM $var
    if_not_exists: bool = False  # CREATE MODEL IF NOT EXISTS: nothing registered when the name exists


@dataclass(frozen=True)
class ShowModels:
    pass


@dataclass(frozen=True)
class DescribeModel:
    ref: str


@dataclass(frozen=True)
class DropModel:
    ref: str
    if_exists: bool


ModelStatement = CreateModel | ShowModels | DescribeModel | DropModel


@dataclass(frozen=True)
class MlPredict:
    """One ``ML.PREDICT(MODEL m, (query) | TABLE t)`` replaced by ``placeholder``."""

    model_ref: str
    query: str
    placeholder: str


@dataclass
class Rewritten:
    text: str
    ml_predicts: list[MlPredict] = field(default_factory=list)
    has_predict: bool = False


def tokenize(text: str) -> tuple[Token, ...] | None:
    try:
        return tuple(_DIALECT.tokenize(text))
    except TokenError:
        return None


@lru_cache(maxsize=256)
def split(text: str) -> tuple[Statement, ...]:
    """Split on top-level semicolons; empty statements are dropped. Kept per text: a
    re-run cell is not tokenized again."""
    tokens = tokenize(text)
    if tokens is None:
        stripped = text.strip()
        return (Statement(stripped, None),) if stripped else ()
    statements: list[Statement] = []
    current: list[Token] = []
    for token in [*tokens, None]:
        if token is None or token.token_type == TokenType.SEMICOLON:
            if current:
                start, end = current[0].start, current[-1].end + 1
                piece = text[start:end]
                whole = start == 0 and len(current) == len(tokens)  # positions already relative to the piece
                statements.append(Statement(piece, tokens if whole else tokenize(piece)))
            current = []
        else:
            current.append(token)
    return tuple(statements)


def _word(token: Token) -> str:
    return token.text.upper() if token.token_type not in (TokenType.STRING, TokenType.IDENTIFIER) else ""


def _name_at(tokens: tuple[Token, ...], i: int, what: str) -> tuple[str, int]:
    """Read a model name (identifier, quoted identifier, string, optionally ``@N``)."""
    if i >= len(tokens):
        raise SqlmlError(f"expected a model name after {what}")
    token = tokens[i]
    if token.token_type in (TokenType.STRING, TokenType.IDENTIFIER) or token.text.replace("_", "a").isalnum():
        name = token.text
    else:
        raise SqlmlError(f"expected a model name after {what}, got {token.text!r}")
    i += 1
    if (
        i + 1 < len(tokens)
        and tokens[i].text == "@"
        and tokens[i + 1].token_type == TokenType.NUMBER
    ):
        name = f"{name}@{tokens[i + 1].text}"
        i += 2
    return name, i


def _expect_end(tokens: tuple[Token, ...], i: int, usage: str) -> None:
    if i != len(tokens):
        raise SqlmlError(f"unexpected {tokens[i].text!r}; expected {usage}")


def model_statement(statement: Statement) -> ModelStatement | None:
    """Recognise CREATE/SHOW/DESCRIBE/DROP MODEL(S); None for anything else."""
    tokens = statement.tokens
    if not tokens or len(tokens) < 2:
        return None
    words = [_word(t) for t in tokens]
    if words[0] == "SHOW" and words[1] == "MODELS":
        _expect_end(tokens, 2, "SHOW MODELS")
        return ShowModels()
    if words[0] in ("DESCRIBE", "DESC") and words[1] == "MODEL" and len(tokens) > 2:
        name, i = _name_at(tokens, 2, "DESCRIBE MODEL")
        _expect_end(tokens, i, "DESCRIBE MODEL name")
        return DescribeModel(name)
    if words[0] == "DROP" and words[1] == "MODEL":
        i, if_exists = 2, False
        if words[2:4] == ["IF", "EXISTS"]:
            i, if_exists = 4, True
        name, i = _name_at(tokens, i, "DROP MODEL")
        _expect_end(tokens, i, "DROP MODEL [IF EXISTS] name")
        return DropModel(name, if_exists)
    if words[0] == "CREATE":
        i, or_replace = 1, False
        if words[1:3] == ["OR", "REPLACE"]:
            i, or_replace = 3, True
        if i >= len(words) or words[i] != "MODEL":
            return None
        usage = "CREATE [OR REPLACE] MODEL [IF NOT EXISTS] name FROM 'path' | $variable"
        i += 1
        if_not_exists = words[i : i + 3] == ["IF", "NOT", "EXISTS"]  # BigQuery ML's and DuckDB's habit
        if if_not_exists:
            if or_replace:
                raise SqlmlError(f"OR REPLACE and IF NOT EXISTS cannot both be given; usage: {usage}")
            i += 3
        name, i = _name_at(tokens, i, "CREATE MODEL")
        if i >= len(tokens) or words[i] != "FROM":
            raise SqlmlError(f"expected FROM after the model name; usage: {usage}")
        i += 1
        if i < len(tokens) and tokens[i].token_type == TokenType.STRING:
            _expect_end(tokens, i + 1, usage)
            return CreateModel(name, or_replace, tokens[i].text, None, if_not_exists)
        if i + 1 < len(tokens) and tokens[i].text == "$" and tokens[i + 1].text.isidentifier():
            _expect_end(tokens, i + 2, usage)
            return CreateModel(name, or_replace, None, tokens[i + 1].text, if_not_exists)
        raise SqlmlError(f"expected a quoted path or $variable after FROM; usage: {usage}")
    return None


def _matching_paren(tokens: tuple[Token, ...], i: int) -> int:
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].token_type == TokenType.L_PAREN:
            depth += 1
        elif tokens[j].token_type == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                return j
    raise SqlmlError("unbalanced parentheses")


def rewrite_extensions(statement: Statement, placeholder_prefix: str) -> Rewritten:
    """Replace each ML.PREDICT(...) by a placeholder table and rename predict( calls."""
    tokens = statement.tokens
    text = statement.text
    out = Rewritten(text=text)
    if not tokens:
        return out
    pieces: list[str] = []
    cursor = 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        is_ml = (
            token.text.upper() == "ML"
            and i + 3 < len(tokens)
            and tokens[i + 1].token_type == TokenType.DOT
            and tokens[i + 2].text.upper() == "PREDICT"
            and tokens[i + 3].token_type == TokenType.L_PAREN
        )
        if is_ml:
            close = _matching_paren(tokens, i + 3)
            call = _ml_predict(text, tokens, i + 4, close, f"{placeholder_prefix}{len(out.ml_predicts)}")
            out.ml_predicts.append(call)
            pieces.append(text[cursor : token.start])
            pieces.append(call.placeholder)
            cursor = tokens[close].end + 1
            i = close + 1
            continue
        is_predict = (
            token.text.lower() == "predict"
            and token.token_type == TokenType.VAR
            and i + 1 < len(tokens)
            and tokens[i + 1].token_type == TokenType.L_PAREN
            and (i == 0 or tokens[i - 1].token_type != TokenType.DOT)
        )
        if is_predict:
            out.has_predict = True
            pieces.append(text[cursor : token.start])
            pieces.append(PREDICT_PLACEHOLDER)
            cursor = token.end + 1
            pinned = _pinned_model(tokens, i + 2)
            if pinned is not None:  # predict(churn@2, ...) -> predict('churn@2', ...)
                first, last, ref = pinned
                pieces.append(text[cursor : tokens[first].start])
                pieces.append(exp.Literal.string(ref).sql(dialect="duckdb"))
                cursor = tokens[last].end + 1
                i = last
        i += 1
    pieces.append(text[cursor:])
    out.text = "".join(pieces)
    return out


def _pinned_model(tokens: tuple[Token, ...], i: int) -> tuple[int, int, str] | None:
    """An unquoted ``name@N`` first argument: (first token, last token, "name@N")."""
    if i + 3 >= len(tokens):
        return None
    name, at, number, after = tokens[i : i + 4]
    if (
        name.token_type in (TokenType.VAR, TokenType.IDENTIFIER)
        and at.text == "@"
        and number.token_type == TokenType.NUMBER
        and number.text.isdigit()
        and after.token_type in (TokenType.COMMA, TokenType.R_PAREN)
    ):
        return i, i + 2, f"{name.text}@{number.text}"
    return None


def _ml_predict(text: str, tokens: tuple[Token, ...], i: int, close: int, placeholder: str) -> MlPredict:
    usage = "ML.PREDICT(MODEL name, (query) | TABLE name)"
    if i >= close or tokens[i].text.upper() != "MODEL":
        raise SqlmlError(f"expected MODEL as the first argument; usage: {usage}")
    ref, i = _name_at(tokens, i + 1, "MODEL")
    if i >= close or tokens[i].token_type != TokenType.COMMA:
        raise SqlmlError(f"expected a comma after the model name; usage: {usage}")
    i += 1
    end = _argument_end(tokens, i, close)
    if end < close:  # BigQuery's third argument, STRUCT(0.5 AS threshold): a parse error in nbgov's own SQL
        raise SqlmlError(
            f"ML.PREDICT takes two arguments, the model and the relation (options such as BigQuery's "
            f"STRUCT(...) third argument are not supported); usage: {usage}"
        )
    if i < close and tokens[i].token_type == TokenType.TABLE:
        if i + 1 >= close:
            raise SqlmlError(f"expected a table name after TABLE; usage: {usage}")
        relation = text[tokens[i + 1].start : tokens[close - 1].end + 1]
        return MlPredict(ref, f"SELECT * FROM {relation}", placeholder)
    if i < close and tokens[i].token_type == TokenType.L_PAREN and _matching_paren(tokens, i) == close - 1:
        query = text[tokens[i + 1].start : tokens[close - 2].end + 1]
        return MlPredict(ref, query, placeholder)
    raise SqlmlError(f"expected (query) or TABLE name as the second argument; usage: {usage}")


def _argument_end(tokens: tuple[Token, ...], i: int, close: int) -> int:
    """Where the argument starting at token ``i`` ends: at the first comma outside its
    parentheses, else at ``close``."""
    depth = 0
    for at in range(i, close):
        kind = tokens[at].token_type
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            depth -= 1
        elif kind == TokenType.COMMA and depth == 0:
            return at
    return close
