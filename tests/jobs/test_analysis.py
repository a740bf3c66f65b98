"""Analysis of operators' SQL: what is accepted, what is refused and which column uses result."""

from __future__ import annotations

import pytest

from policies import ColumnUse
from policies.jobs import AnalysisError, analyse
from tests.jobs.world import SCHEMA


def uses(sql: str) -> set[tuple[str, str, str | None]]:
    return {(u.column, u.usage, u.function) for u in analyse(sql, SCHEMA).column_uses}


def refused(sql: str) -> AnalysisError:
    with pytest.raises(AnalysisError) as info:
        analyse(sql, SCHEMA)
    return info.value


def refused_uses(sql: str) -> set[tuple[str, str, str | None]]:
    return {(u.column, u.usage, u.function) for u in refused(sql).column_uses}


def test_design_example_is_described_for_the_policy_engine() -> None:
    sql = "SELECT district, COUNT(*), AVG(los) FROM admissions WHERE age > 60 GROUP BY district"
    analysis = analyse(sql, SCHEMA)
    assert analysis.column_uses == (
        ColumnUse(asset="admissions", column="age", usage="filter"),
        ColumnUse(asset="admissions", column="district", usage="group_by"),
        ColumnUse(asset="admissions", column="los", usage="aggregate", function="avg"),
    )
    assert [g.sql for g in analysis.group_by] == ['"district"']
    assert analysis.where == '"age" > 60'
    assert [(o.name, o.kind, o.function) for o in analysis.outputs] == [
        ("district", "group_key", None),
        ("count", "aggregate", "count"),
        ("avg_los", "aggregate", "avg"),
    ]
    assert analysis.outputs[2].value_column == "los"
    assert analysis.needs_permission == ()


def test_analysis_is_cached_by_sql_and_schema() -> None:
    sql = "SELECT COUNT(*) FROM admissions"
    assert analyse(sql, SCHEMA) is analyse(sql, SCHEMA)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM admissions",
        "SELECT admissions.* FROM admissions",
        "SELECT * EXCLUDE (diagnosis) FROM admissions",
        "SELECT COLUMNS('.*') FROM admissions",
        "SELECT district, * FROM admissions GROUP BY district",
    ],
)
def test_select_star_is_refused(sql: str) -> None:
    assert "select_star" in refused(sql).codes


def test_row_level_selection_is_refused_and_reported_as_plain_use() -> None:
    error = refused("SELECT age, los FROM admissions WHERE district = 'north'")
    assert error.codes == ("non_aggregate_select",)
    assert {(u.column, u.usage) for u in error.column_uses} >= {
        ("age", "select_plain"),
        ("los", "select_plain"),
        ("district", "filter"),
    }


def test_group_key_not_selected_consistently_is_row_level() -> None:
    error = refused("SELECT upper(district), COUNT(*) FROM admissions GROUP BY district")
    assert error.codes == ("non_aggregate_select",)


def test_group_by_identifier_is_refused_and_reported() -> None:
    error = refused("SELECT patient_id, COUNT(*) FROM admissions GROUP BY patient_id")
    assert error.codes == ("group_by_identifier",)
    assert ColumnUse(asset="admissions", column="patient_id", usage="group_by") in (
        error.column_uses
    )
    assert (
        "group_by_identifier"
        in refused(
            "SELECT COUNT(*) FROM admissions GROUP BY CASE WHEN patient_id > 10 THEN 1 END"
        ).codes
    )


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT COUNT(*) FROM admissions WHERE diagnosis = 'A10'",
            ("diagnosis", "filter", None),
        ),
        (
            "SELECT COUNT(*) FROM admissions WHERE lower(trim(diagnosis)) LIKE 'a%'",
            ("diagnosis", "filter", None),
        ),
        (
            "SELECT diagnosis, COUNT(*) FROM admissions GROUP BY diagnosis ORDER BY diagnosis",
            ("diagnosis", "group_by", None),
        ),
        (
            "SELECT SUM(CASE WHEN diagnosis IS NULL THEN los END) FROM admissions",
            ("diagnosis", "filter", None),
        ),
        ("SELECT COUNT(diagnosis) FROM admissions", ("diagnosis", "aggregate", "count")),
        (
            "SELECT COUNT(*) FROM admissions GROUP BY length(diagnosis) > 3",
            ("diagnosis", "group_by", None),
        ),
    ],
)
def test_sensitive_column_use_is_reported_wherever_it_appears(
    sql: str, expected: tuple[str, str, str | None]
) -> None:
    assert expected in uses(sql)


def test_order_by_a_column_that_is_not_a_key_is_a_plain_use() -> None:
    sql = "SELECT district, COUNT(*) FROM admissions GROUP BY district ORDER BY diagnosis"
    error = refused(sql)
    assert error.codes == ("order_by_not_allowed",)
    assert ("diagnosis", "select_plain", None) in refused_uses(sql)


def test_order_by_keys_positions_aliases_and_aggregates_is_accepted() -> None:
    sql = (
        "SELECT district AS d, COUNT(*) AS n FROM admissions GROUP BY 1 "
        "ORDER BY d, 2 DESC, district, COUNT(*)"
    )
    assert [o.name for o in analyse(sql, SCHEMA).outputs] == ["d", "n"]


def test_count_distinct_unit_is_an_aggregate_count_on_the_identifier() -> None:
    analysis = analyse("SELECT COUNT(DISTINCT patient_id) AS people FROM admissions", SCHEMA)
    assert analysis.outputs[0].function == "count_units"
    assert analysis.column_uses == (
        ColumnUse(asset="admissions", column="patient_id", usage="aggregate", function="count"),
    )
    assert refused("SELECT COUNT(DISTINCT district) FROM admissions").codes == (
        "count_distinct_not_allowed",
    )


def test_min_max_are_flagged_as_needing_permission() -> None:
    analysis = analyse("SELECT MIN(los), MAX(cost) FROM admissions", SCHEMA)
    assert analysis.needs_permission == ("min", "max")


def test_aggregate_functions_map_to_policy_functions() -> None:
    sql = (
        "SELECT SUM(los), AVG(los), VARIANCE(los), VAR_SAMP(los), VAR_POP(los), STDDEV(los), "
        "STDDEV_SAMP(los), STDDEV_POP(los) FROM admissions"
    )
    analysis = analyse(sql, SCHEMA)
    assert [o.function for o in analysis.outputs] == [
        "sum",
        "avg",
        "var_samp",
        "var_samp",
        "var_pop",
        "stddev_samp",
        "stddev_samp",
        "stddev_pop",
    ]
    assert {u.function for u in analysis.column_uses} == {"sum", "avg", "variance", "stddev"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM read_csv('/etc/passwd')",
        "SELECT COUNT(*) FROM read_csv_auto('/data/other.csv')",
        "SELECT COUNT(*) FROM read_parquet('s3://bucket/x.parquet')",
        "SELECT COUNT(*) FROM read_json('/tmp/x.json')",
        "SELECT COUNT(*) FROM read_text('/etc/shadow')",
        "SELECT COUNT(*) FROM read_blob('/etc/shadow')",
        "SELECT COUNT(*) FROM glob('/data/*')",
        "SELECT COUNT(*) FROM '/etc/passwd'",
        "SELECT COUNT(*) FROM 'other_asset.parquet'",
        "SELECT COUNT(*) FROM 'https://example.org/data.csv'",
        'SELECT COUNT(*) FROM "../secrets/admissions"',
    ],
)
def test_file_readers_and_paths_are_refused(sql: str) -> None:
    assert "table_function" in refused(sql).codes


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM admissions WHERE district = read_text('/etc/passwd')",
        "SELECT COUNT(*) FROM admissions WHERE getenv('HOME') = district",
    ],
)
def test_file_readers_as_scalars_are_refused(sql: str) -> None:
    assert "function_not_allowed" in refused(sql).codes


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM admissions; DROP TABLE admissions",
        "SELECT COUNT(*) FROM admissions; -- \n DROP TABLE admissions",
        "SELECT COUNT(*) FROM admissions /* ; */ ; DELETE FROM admissions",
        "SELECT COUNT(*) FROM admissions; /* hidden */ COPY admissions TO '/tmp/x.csv'",
        "/* */ SELECT COUNT(*) FROM admissions; ATTACH '/tmp/x.db'",
        "SELECT COUNT(*) FROM admissions; SELECT COUNT(*) FROM admissions",
    ],
)
def test_two_statements_are_refused(sql: str) -> None:
    assert "multiple_statements" in refused(sql).codes


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM admissions; -- trailing comment",
        "SELECT COUNT(*) FROM admissions -- ; DROP TABLE admissions",
        "SELECT COUNT(*) /* ; DROP TABLE admissions; */ FROM admissions",
    ],
)
def test_comments_are_not_statements_and_never_reach_a_site(sql: str) -> None:
    analysis = analyse(sql, SCHEMA)
    assert analysis.outputs[0].function == "count"


@pytest.mark.parametrize(
    ("sql", "keyword"),
    [
        ("COPY admissions TO '/tmp/out.csv'", "COPY"),
        ("COPY (SELECT * FROM admissions) TO '/tmp/out.csv'", "COPY"),
        ("ATTACH '/tmp/other.db' AS other", "ATTACH"),
        ("DETACH other", "DETACH"),
        ("INSTALL httpfs", "INSTALL"),
        ("LOAD httpfs", "LOAD"),
        ("PRAGMA database_list", "PRAGMA"),
        ("SET enable_external_access = true", "SET"),
        ("CALL pragma_version()", "CALL"),
        ("CREATE TABLE x AS SELECT * FROM admissions", "CREATE"),
        ("INSERT INTO admissions VALUES (1)", "INSERT"),
        ("UPDATE admissions SET los = 0", "UPDATE"),
        ("DELETE FROM admissions", "DELETE"),
        ("DROP TABLE admissions", "DROP"),
        ("DESCRIBE admissions", "DESCRIBE"),
    ],
)
def test_commands_are_forbidden(sql: str, keyword: str) -> None:
    error = refused(sql)
    assert error.codes == ("forbidden_command",)
    assert error.reasons[0].construct == keyword


def test_unparsable_commands_are_parse_errors() -> None:
    assert refused("EXPORT DATABASE '/tmp/out'").codes == ("parse_error",)
    assert refused("").codes == ("parse_error",)
    assert refused("SELECT COUNT(* FROM admissions").codes == ("parse_error",)


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        (
            "SELECT COUNT(*) FROM admissions a JOIN admissions b ON a.patient_id = b.patient_id",
            "join_not_supported",
        ),
        ("SELECT COUNT(*) FROM admissions, admissions AS b", "join_not_supported"),
        ("SELECT COUNT(*) FROM admissions CROSS JOIN admissions", "join_not_supported"),
        ("SELECT COUNT(*) FROM admissions JOIN other USING (patient_id)", "join_not_supported"),
        ("SELECT COUNT(*) FROM admissions, LATERAL (SELECT 1)", "join_not_supported"),
        (
            "SELECT COUNT(*) FROM admissions UNION ALL SELECT COUNT(*) FROM admissions",
            "set_operation",
        ),
        (
            "SELECT COUNT(*) FROM admissions EXCEPT SELECT COUNT(*) FROM admissions",
            "set_operation",
        ),
        ("SELECT district, COUNT(*) FROM admissions GROUP BY 1 LIMIT 1", "limit_not_allowed"),
        ("SELECT COUNT(*) FROM admissions OFFSET 3", "limit_not_allowed"),
        ("SELECT COUNT(*) FROM admissions TABLESAMPLE (10 PERCENT)", "sample_not_allowed"),
        ("SELECT COUNT(*) FROM admissions USING SAMPLE 10%", "sample_not_allowed"),
        ("SELECT COUNT(*) OVER () FROM admissions", "window_not_allowed"),
        (
            "SELECT SUM(los) OVER (PARTITION BY district) FROM admissions",
            "window_not_allowed",
        ),
        ("SELECT COUNT(*) FROM admissions QUALIFY 1 = 1", "window_not_allowed"),
        (
            "SELECT district, COUNT(*) FROM admissions GROUP BY district HAVING COUNT(*) > 1",
            "having_not_supported",
        ),
        ("SELECT DISTINCT district FROM admissions", "distinct_not_allowed"),
        ("WITH x AS (SELECT * FROM admissions) SELECT COUNT(*) FROM x", "subquery_not_supported"),
        ("SELECT COUNT(*) FROM (SELECT * FROM admissions)", "subquery_not_supported"),
        (
            "SELECT COUNT(*) FROM admissions WHERE age > (SELECT AVG(age) FROM admissions)",
            "subquery_not_supported",
        ),
        (
            "SELECT COUNT(*) FROM admissions WHERE patient_id IN (SELECT 1)",
            "subquery_not_supported",
        ),
        ("SELECT COUNT(*) FROM other", "unknown_table"),
        ("SELECT COUNT(*) FROM main.admissions", "unknown_table"),
        ("SELECT 1", "unknown_table"),
        ("SELECT COUNT(nope) FROM admissions", "unknown_column"),
        ("SELECT COUNT(*) FROM admissions AS a WHERE b.age > 1", "unknown_column"),
        ("SELECT COUNT(*) AS n FROM admissions WHERE n > 1", "unknown_column"),
        (
            "SELECT COUNT(*) FROM admissions GROUP BY ROLLUP (district)",
            "grouping_sets_not_supported",
        ),
        ("SELECT district, COUNT(*) FROM admissions GROUP BY ALL", "group_by_all_not_supported"),
        ("VALUES (1)", "subquery_not_supported"),
        ("SELECT COUNT(*) FROM admissions AS a(x, y)", "unsupported_clause"),
    ],
)
def test_constructs_outside_the_language_are_refused(sql: str, code: str) -> None:
    assert code in refused(sql).codes


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELECT COUNT(*) FROM admissions WHERE error('boom') IS NULL", "function_not_allowed"),
        (
            "SELECT COUNT(*) FROM admissions WHERE regexp_matches(district, 'n.*')",
            "function_not_allowed",
        ),
        ("SELECT COUNT(*) FROM admissions WHERE district ~ 'n.*'", "function_not_allowed"),
        ("SELECT COUNT(*) FROM admissions WHERE district SIMILAR TO 'n%'", "function_not_allowed"),
        ("SELECT COUNT(*) FROM admissions WHERE random() < 0.5", "function_not_allowed"),
        ("SELECT COUNT(*) FROM admissions WHERE age % 2 = 0", "function_not_allowed"),
        ("SELECT COUNT(*) FROM admissions WHERE CAST(district AS INT) > 1", "fallible_cast"),
        ("SELECT COUNT(*) FROM admissions WHERE district::INTEGER > 1", "fallible_cast"),
        ("SELECT COUNT(*) FROM admissions WHERE TRY_CAST(district AS INT) > 1", "fallible_cast"),
        ("SELECT COUNT(*) FROM admissions WHERE CAST(los AS INTEGER) > 1", "fallible_cast"),
        ("SELECT COUNT(*) FROM admissions WHERE los / age > 1", "division_by_expression"),
        ("SELECT COUNT(*) FROM admissions WHERE los / 0 > 1", "division_by_expression"),
        ("SELECT COUNT(*) FROM admissions WHERE los / (1 - 1) > 1", "division_by_expression"),
        ("SELECT COUNT(*) FROM admissions WHERE district = 5", "type_mismatch"),
        ("SELECT COUNT(*) FROM admissions WHERE district IN ('a', 1)", "type_mismatch"),
        ("SELECT COUNT(*) FROM admissions WHERE age = 'x'", "type_mismatch"),
        ("SELECT COUNT(*) FROM admissions WHERE age", "type_mismatch"),
        ("SELECT COUNT(*) FROM admissions WHERE district LIKE diagnosis", "unsupported_expression"),
        (
            "SELECT COUNT(*) FROM admissions WHERE district LIKE 'a' ESCAPE 'b'",
            "function_not_allowed",
        ),
        ("SELECT SUM(district) FROM admissions", "type_mismatch"),
        ("SELECT SUM(los * 1e6) FROM admissions", "unbounded_expression"),
        ("SELECT SUM(CASE WHEN age > 60 THEN 1e6 END) FROM admissions", "unbounded_expression"),
        (
            "SELECT SUM(CASE WHEN age > 60 THEN los ELSE cost END) FROM admissions",
            "unbounded_expression",
        ),
        ("SELECT AVG(abs(los)) FROM admissions", "unbounded_expression"),
        ("SELECT SUM(DISTINCT los) FROM admissions", "distinct_aggregate_not_allowed"),
        (
            "SELECT COUNT(*) FILTER (WHERE age > 60) FROM admissions",
            "aggregate_filter_not_supported",
        ),
        ("SELECT list(los) FROM admissions", "function_not_allowed"),
        ("SELECT string_agg(diagnosis, ',') FROM admissions", "function_not_allowed"),
        ("SELECT SUM(los) / COUNT(*) FROM admissions", "aggregate_expression_not_supported"),
        ("SELECT ROUND(AVG(los), 1) FROM admissions", "aggregate_expression_not_supported"),
        ("SELECT SUM(COUNT(*)) FROM admissions", "aggregate_not_allowed_here"),
        ("SELECT COUNT(*) FROM admissions WHERE SUM(los) > 1", "aggregate_not_allowed_here"),
        ("SELECT COUNT(*) FROM admissions GROUP BY SUM(los)", "aggregate_not_allowed_here"),
        ("SELECT COUNT(*) FROM admissions WHERE age > $1", "unsupported_expression"),
        ("SELECT COUNT(*) AS n, SUM(los) AS n FROM admissions", "duplicate_output_name"),
        ("SELECT COUNT(*) FROM admissions WHERE admitted > '2020-02-30'", "type_mismatch"),
        ("SELECT COUNT(*) FROM admissions WHERE admitted > 'yesterday'", "type_mismatch"),
        ("SELECT COUNT(*) FROM admissions WHERE admitted > DATE '2020-13-01'", "fallible_cast"),
        ("SELECT COUNT(*) FROM admissions WHERE age < CAST(300 AS TINYINT)", "fallible_cast"),
        ("SELECT COUNT(*) FROM admissions WHERE age IN ()", "unsupported_expression"),
        ("SELECT COUNT(*) FROM admissions WHERE district LIKE 'a\\'", "unsupported_expression"),
    ],
)
def test_unsafe_expressions_are_refused(sql: str, code: str) -> None:
    assert code in refused(sql).codes


def test_safe_expressions_are_accepted() -> None:
    sql = (
        "SELECT date_trunc('month', admitted) AS month, floor(age / 10) * 10 AS band, "
        "COUNT(*), SUM(CASE WHEN readmitted THEN los ELSE 0 END) AS readmit_days, "
        "COUNT(CASE WHEN diagnosis IN ('A10', 'B20') THEN 1 END) AS ab "
        "FROM admissions "
        "WHERE admitted BETWEEN DATE '2020-01-01' AND '2023-12-31' AND NOT readmitted IS NULL "
        "AND admitted < TIMESTAMP '2024-01-01 12:30:00' AND cost > CAST(5 AS DOUBLE) "
        "AND coalesce(lower(district), 'none') <> 'east' AND abs(los - 3.5) < 50 "
        "AND round(cost, 2) >= 0 AND year(admitted) >= 2020 AND EXTRACT(month FROM admitted) < 13 "
        "AND least(age, 100) = greatest(age, 0) OR district ILIKE 'N%' "
        "GROUP BY 1, band ORDER BY month"
    )
    analysis = analyse(sql, SCHEMA)
    assert [o.name for o in analysis.outputs] == ["month", "band", "count", "readmit_days", "ab"]
    assert analysis.outputs[3].literals == (0.0,)


def test_every_reason_is_collected() -> None:
    sql = (
        "SELECT *, COUNT(*) OVER () FROM admissions a JOIN read_csv('/x') b ON true "
        "WHERE district = 5 HAVING 1 = 1 LIMIT 3"
    )
    codes = set(refused(sql).codes)
    assert codes >= {
        "select_star",
        "window_not_allowed",
        "join_not_supported",
        "table_function",
        "type_mismatch",
        "having_not_supported",
        "limit_not_allowed",
    }


def test_refusals_are_structured() -> None:
    error = refused("SELECT COUNT(*) FROM admissions LIMIT 1")
    (reason,) = error.reasons
    assert reason.to_dict() == {
        "code": "limit_not_allowed",
        "construct": "LIMIT",
        "message": reason.message,
        "fix": reason.fix,
    }
    assert reason.message and reason.fix
    assert error.to_dict()["stage"] == "analysis"


def test_columns_are_matched_regardless_of_case_and_qualifiers() -> None:
    sql = "SELECT A.DISTRICT, count(*) FROM ADMISSIONS AS a GROUP BY a.District"
    analysis = analyse(sql, SCHEMA)
    assert analysis.group_by[0].sql == '"district"'
    assert analysis.outputs[0].name == "district"
