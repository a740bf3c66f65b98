"""RFC 8785 canonicalisation: the RFC's own examples, an ECMAScript oracle, and properties."""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.tlog.errors import EntryError
from contracts.tlog.jcs import MAX_SAFE_INTEGER, canonical_json, format_number, loads_strict

# RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript serialisation.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_appendix_b_numbers(bits: str, expected: str) -> None:
    assert format_number(_double(bits)) == expected
    assert canonical_json(_double(bits)) == expected.encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (-0.0, "0"),
        (1.0, "1"),
        (4.5, "4.5"),
        (0.002, "0.002"),
        (1e30, "1e+30"),
        (1e-27, "1e-27"),
        (123456789012345680000.0, "123456789012345680000"),
        (1.5e300, "1.5e+300"),
        (-2.5e-8, "-2.5e-8"),
        (0, "0"),
        (-17, "-17"),
        (MAX_SAFE_INTEGER, "9007199254740991"),
    ],
)
def test_number_examples(value: float, expected: str) -> None:
    assert format_number(value) == expected


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_non_finite_numbers_rejected(bits: str) -> None:
    with pytest.raises(ValueError, match="no JSON representation"):
        canonical_json([_double(bits)])


def test_rfc8785_section_3_2_2_example() -> None:
    value = loads_strict(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(value) == expected.encode("utf-8")


def test_rfc8785_section_3_2_3_sorting() -> None:
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_json(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_string_escaping() -> None:
    text = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f\u2028é😀'
    expected = (
        '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r'
        "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018"
        '\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\"\\\\/\x7f\u2028é😀"'
    )
    assert canonical_json(text) == expected.encode("utf-8")


@pytest.mark.parametrize(
    "value",
    [
        2**53,
        -(2**53),
        10**30,
        {1: "x"},
        {"a": {1, 2}},
        b"bytes",
        object(),
        "\ud800",
        {"\udc00": 1},
        math.nan,
        [math.inf],
    ],
)
def test_rejected_values(value: object) -> None:
    with pytest.raises(EntryError):
        canonical_json(value)


def test_deep_nesting_rejected() -> None:
    value: list[object] = []
    for _ in range(200):
        value = [value]
    with pytest.raises(EntryError, match="nesting"):
        canonical_json(value)


@pytest.mark.parametrize(
    "text",
    ['{"a":1,"a":2}', "[NaN]", "[Infinity]", "[-Infinity]", "{", '"\\x"', "1 2"],
)
def test_loads_strict_rejects(text: str) -> None:
    with pytest.raises(EntryError):
        loads_strict(text)


def test_ecmascript_oracle() -> None:
    """Compare with node's Number.prototype.toString on many random doubles."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    rng = random.Random(8785)
    patterns = [f"{rng.getrandbits(64):016x}" for _ in range(4000)]
    patterns += [struct.pack(">d", rng.uniform(-1e6, 1e6)).hex() for _ in range(1000)]
    patterns += [struct.pack(">d", float(rng.randint(-(10**22), 10**22))).hex() for _ in range(500)]
    patterns += [struct.pack(">d", 10.0 ** rng.randint(-30, 30)).hex() for _ in range(500)]
    values = [_double(p) for p in patterns]
    finite = [p for p, v in zip(patterns, values, strict=True) if math.isfinite(v)]
    script = (
        "const bits = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "const view = new DataView(new ArrayBuffer(8));"
        "console.log(JSON.stringify(bits.map((h) => {"
        "view.setBigUint64(0, BigInt('0x' + h)); return JSON.stringify(view.getFloat64(0)); })));"
    )
    result = subprocess.run(
        [node, "-e", script],
        input=json.dumps(finite),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    expected = json.loads(result.stdout)
    got = [format_number(_double(p)) for p in finite]
    mismatches = [(p, g, e) for p, g, e in zip(finite, got, expected, strict=True) if g != e]
    assert mismatches == []


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.text(alphabet=st.characters(exclude_categories=["Cs"], max_codepoint=0xFFFF)),
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.text(alphabet=st.characters(exclude_categories=["Cs"], max_codepoint=0xFFFF)),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_agrees_with_json_module_without_floats(value: object) -> None:
    """Without floats or astral characters, RFC 8785 equals sorted compact json.dumps."""
    expected = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert canonical_json(value) == expected.encode("utf-8")


any_values = st.recursive(
    st.one_of(
        json_leaf,
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(alphabet=st.characters(exclude_categories=["Cs"])),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(alphabet=st.characters(exclude_categories=["Cs"])), inner),
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(any_values)
def test_canonical_form_is_a_fixed_point(value: object) -> None:
    once = canonical_json(value)
    assert canonical_json(loads_strict(once.decode("utf-8"))) == once


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_round_trips(value: float) -> None:
    text = format_number(value)
    assert float(text) == value
    assert text == text.strip() and "E" not in text and not text.startswith("+")


def test_large_integer_literals_read_as_doubles() -> None:
    assert loads_strict("9007199254740991") == MAX_SAFE_INTEGER
    assert isinstance(loads_strict("9007199254740993"), float)
    assert canonical_json(loads_strict("[9007199254740992]")) == b"[9007199254740992]"
    assert canonical_json(loads_strict("1" + "0" * 30)) == b"1e+30"
    with pytest.raises(EntryError):
        canonical_json(loads_strict("1" + "0" * 400))
