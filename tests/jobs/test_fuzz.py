"""Fuzzing the analysis: nothing but AnalysisError escapes, and what passes is safe to run.

Anything accepted must plan to a single SELECT over the ``asset`` view only, and its
fragment must run without error on a table of hostile values (extreme integers and
decimals, NaN, infinities, infinite dates, NULLs, odd text): a failure that depends on
data would be an error oracle.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from policies.jobs import Analysis, AnalysisError, JobError, analyse, partial_plan
from tests.jobs.world import COLUMNS_SQL, SCHEMA, params

VALID = [
    "SELECT district, COUNT(*), AVG(los) FROM admissions WHERE age > 60 GROUP BY district",
    "SELECT year(admitted) AS y, SUM(CASE WHEN readmitted THEN los ELSE 0 END) "
    "FROM admissions GROUP BY 1",
    "SELECT floor(age / 10) * 10 AS band, VARIANCE(cost), COUNT(DISTINCT patient_id) "
    "FROM admissions WHERE cost BETWEEN 10 AND 500 GROUP BY band ORDER BY band",
    "SELECT COUNT(CASE WHEN diagnosis LIKE 'A%' THEN 1 END), STDDEV_POP(age) FROM admissions "
    "WHERE admitted >= DATE '2021-01-01' AND lower(district) IN ('north', 'south')",
    "SELECT date_trunc('month', admitted) AS m, AVG(los) FROM admissions "
    "WHERE coalesce(age, 0) + 1 > 18 AND round(cost, 1) < 1e9 GROUP BY m",
    "SELECT district, SUM(age) FROM admissions WHERE -age * 3 < 5 AND abs(cost) >= 0 "
    "GROUP BY district",
]

TOKENS = [
    " ",
    ",",
    ";",
    "(",
    ")",
    "*",
    "/",
    "+",
    "-",
    "'",
    '"',
    "--",
    "/*",
    "*/",
    "\n",
    "=",
    "<",
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "HAVING",
    "LIMIT 1",
    "UNION ALL",
    "JOIN",
    "admissions",
    "asset",
    "patient_id",
    "district",
    "age",
    "los",
    "cost",
    "diagnosis",
    "admitted",
    "COUNT(*)",
    "SUM(",
    "AVG(",
    "MIN(",
    "CASE WHEN",
    "THEN",
    "END",
    "ELSE",
    "NULL",
    "1e308",
    "0",
    "9223372036854775807",
    "2147483647",
    "-1",
    "'x'",
    "DATE '2020-01-01'",
    "CAST(",
    " AS INTEGER)",
    " AS DOUBLE)",
    "::INT",
    "read_csv('/etc/passwd')",
    "'/etc/passwd'",
    "DROP TABLE admissions",
    "COPY",
    "ATTACH",
    "PRAGMA",
    "OVER ()",
    "USING SAMPLE 1%",
    "error('x')",
    "/ 0",
    "/ age",
    "% 2",
    "IN (",
    "LIKE '%'",
    "AND",
    "OR",
    "NOT",
    "IS NULL",
    "DISTINCT",
    "least(",
    "greatest(",
    "abs(",
    "year(",
    "lower(",
]


@pytest.fixture(scope="module")
def hostile() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE asset ({COLUMNS_SQL})")
    con.execute(
        """
        INSERT INTO asset VALUES
          (1, 'north', 2147483647, 'nan', 9999999999.99, '', 'infinity', TRUE),
          (2, '', -2147483648, 'inf'::DOUBLE, -9999999999.99, 'A10', '-infinity'::DATE, FALSE),
          (3, NULL, NULL, '-inf'::DOUBLE, NULL, NULL, NULL, NULL),
          (9223372036854775807, 'ü''"\\%_', 0, 1e308, 0, repeat('x', 1000), DATE '2020-02-29',
           TRUE),
          (-9223372036854775808, 'south', -1, -1e308, 0.01, '%', DATE '0001-01-01', FALSE),
          (NULL, 'east', 5, 5.5, 5, 'B', DATE '2021-06-01', NULL)
        """
    )
    yield con
    con.close()


def _check_accepted(analysis: Analysis, con: duckdb.DuckDBPyConnection) -> None:
    for part in [analysis.where, *(g.sql for g in analysis.group_by)]:
        if part is not None:
            assert not list(sqlglot.parse_one(part, read="duckdb").find_all(exp.Table))
    try:
        plan = partial_plan(analysis, params(c=2))
    except JobError:
        return
    statements = sqlglot.parse(plan.sql, read="duckdb")
    assert len(statements) == 1
    assert isinstance(statements[0], exp.Select)
    tables = {t.name for t in statements[0].find_all(exp.Table)}
    assert tables == {"asset"}
    assert not list(statements[0].find_all(exp.Anonymous))
    con.execute(plan.sql).fetchall()


def _analyse(sql: str, con: duckdb.DuckDBPyConnection) -> None:
    try:
        analysis = analyse(sql, SCHEMA)
    except AnalysisError as error:
        reasons = error.reasons
        assert reasons
        assert all(r.code and r.message for r in reasons)
        return
    _check_accepted(analysis, con)


_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(st.text(max_size=120))
def test_random_text_never_crashes(hostile: duckdb.DuckDBPyConnection, text: str) -> None:
    _analyse(text, hostile)


@_SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=25))
def test_random_token_soup_never_crashes(
    hostile: duckdb.DuckDBPyConnection, tokens: list[str]
) -> None:
    _analyse(" ".join(tokens), hostile)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    sql = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(sql)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        if action == "insert":
            sql = sql[:position] + " " + draw(st.sampled_from(TOKENS)) + " " + sql[position:]
        elif action == "delete":
            end = position + draw(st.integers(1, 12))
            sql = sql[:position] + sql[end:]
        elif action == "replace":
            end = position + draw(st.integers(1, 8))
            sql = sql[:position] + draw(st.sampled_from(TOKENS)) + sql[end:]
        else:
            end = position + draw(st.integers(1, 30))
            sql = sql[:end] + sql[position:]
    return sql


@_SETTINGS
@given(mutated())
def test_mutated_queries_never_crash_and_accepted_ones_are_safe(
    hostile: duckdb.DuckDBPyConnection, sql: str
) -> None:
    _analyse(sql, hostile)


NUMBERS = [
    "0",
    "1",
    "-1",
    "2.5",
    "2147483647",
    "9223372036854775807",
    "1e308",
    "-1e308",
    "99999999999999999999999",
    "0.0001",
]
NUMERIC_COLUMNS = ["age", "los", "cost", "patient_id"]


def _numeric(depth: int) -> st.SearchStrategy[str]:
    leaves = st.sampled_from(NUMERIC_COLUMNS + NUMBERS + ["year(admitted)", "length(district)"])
    if depth == 0:
        return leaves
    inner = _numeric(depth - 1)
    return st.one_of(
        leaves,
        st.tuples(inner, st.sampled_from(["+", "-", "*"]), inner).map(" ".join),
        st.tuples(inner, st.sampled_from(NUMBERS[1:])).map(lambda t: f"{t[0]} / {t[1]}"),
        inner.map(lambda e: f"-({e})"),
        st.tuples(st.sampled_from(["abs", "floor", "ceil"]), inner).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
        st.tuples(inner, st.integers(-20, 20)).map(lambda t: f"round({t[0]}, {t[1]})"),
        st.tuples(st.sampled_from(["least", "greatest", "coalesce"]), inner, inner).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        st.tuples(_boolean(depth - 1), inner, inner).map(
            lambda t: f"CASE WHEN {t[0]} THEN {t[1]} ELSE {t[2]} END"
        ),
        st.sampled_from(["EXTRACT(year FROM admitted)", "month(admitted)", "CAST(age AS DOUBLE)"]),
    )


def _text(depth: int) -> st.SearchStrategy[str]:
    leaves = st.sampled_from(["district", "diagnosis", "'x'", "''", "CAST(age AS VARCHAR)"])
    if depth == 0:
        return leaves
    inner = _text(depth - 1)
    return st.one_of(
        leaves,
        st.tuples(st.sampled_from(["lower", "upper", "trim"]), inner).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
        st.tuples(inner, inner).map(lambda t: f"coalesce({t[0]}, {t[1]})"),
    )


def _boolean(depth: int) -> st.SearchStrategy[str]:
    comparison = st.sampled_from(["=", "<>", "<", ">=", "IS DISTINCT FROM"])
    leaves = st.one_of(
        st.sampled_from(
            [
                "readmitted",
                "admitted > '2020-06-01'",
                "district IS NULL",
                "admitted BETWEEN DATE '2020-01-01' AND date_trunc('month', admitted)",
            ]
        ),
        st.tuples(_numeric(0), comparison, _numeric(0)).map(" ".join),
        st.tuples(_text(0), st.sampled_from(["LIKE '%a_'", "ILIKE 'N%'", "IN ('a', 'north')"])).map(
            " ".join
        ),
        st.tuples(_text(0), comparison, _numeric(0)).map(" ".join),
    )
    if depth == 0:
        return leaves
    inner = _boolean(depth - 1)
    return st.one_of(
        leaves,
        st.tuples(_numeric(depth - 1), comparison, _numeric(depth - 1)).map(" ".join),
        st.tuples(_text(depth - 1), comparison, _text(depth - 1)).map(" ".join),
        st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"
        ),
        inner.map(lambda e: f"NOT ({e})"),
        st.tuples(_numeric(depth - 1), _numeric(0), _numeric(0)).map(
            lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"
        ),
    )


@st.composite
def generated(draw: st.DrawFn) -> str:
    key = draw(st.one_of(_numeric(2), _text(2), st.just("date_trunc('year', admitted)")))
    column = draw(st.sampled_from(["age", "los", "cost"]))
    literal = draw(st.sampled_from(["0", "1", "NULL", "1e6"]))
    aggregate = draw(st.sampled_from(["SUM", "AVG", "VAR_POP", "STDDEV", "COUNT"]))
    argument = draw(
        st.one_of(
            st.just(column),
            _boolean(1).map(lambda b: f"CASE WHEN {b} THEN {column} ELSE {literal} END"),
        )
    )
    where = draw(_boolean(2))
    return (
        f"SELECT {key} AS k, COUNT(*), COUNT(DISTINCT patient_id), {aggregate}({argument}) "
        f"FROM admissions WHERE {where} GROUP BY k"
    )


@_SETTINGS
@given(generated())
def test_generated_queries_are_refused_or_run_on_hostile_values(
    hostile: duckdb.DuckDBPyConnection, sql: str
) -> None:
    _analyse(sql, hostile)


@pytest.mark.parametrize("sql", VALID)
def test_valid_queries_run_on_hostile_values(hostile: duckdb.DuckDBPyConnection, sql: str) -> None:
    _check_accepted(analyse(sql, SCHEMA), hostile)


def test_hostile_table_really_is_hostile(hostile: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(duckdb.Error):
        hostile.execute("SELECT age + 1 FROM asset").fetchall()
    with pytest.raises(duckdb.Error):
        hostile.execute("SELECT cost * 1000000000 FROM asset").fetchall()
    with pytest.raises(duckdb.Error):
        hostile.execute("SELECT COUNT(*) FROM asset WHERE district = 5").fetchall()
