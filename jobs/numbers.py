"""Telephone numbers: as carriers and officers write them -> the lake's form (E.164), and back.

The rules are one table (`RULES`), rendered three ways from it: a Python function (`e164`, for the
small files: whitelist, field feedback), a Spark column expression (`spark_e164`, for CDRs) and a
Polars expression (`polars_e164`). So a number is read the same way wherever it comes in.

The lake's form: `+8613912345678` (mobile), `+862885551234` (landline, trunk 0 dropped), `+855...`
(foreign), and 3-6 digit service numbers as digits (`95588`, `110`). Anything else is kept as given
(the quarantine or the reader decides what that means); blank is NULL.
"""

from __future__ import annotations

import re

# (pattern, template) in order, the first match wins. A template names the pattern's groups as {1}, {2}.
RULES: tuple[tuple[str, str], ...] = (
    (r"^(?:\+86|0086|86)?(1[3-9][0-9]{9})$", "+86{1}"),  # mobile: 11 digits 1[3-9]x, bare or after 86
    (r"^0([1-9][0-9]{1,2})-?([0-9]{7,8})$", "+86{1}{2}"),  # landline: trunk 0, area code, optional dash
    (r"^(\+[1-9][0-9]{4,14})$", "{1}"),  # international, with +
    (r"^00([1-9][0-9]{4,14})$", "+{1}"),  # international, with the 00 prefix
    (r"^([0-9]{3,6})$", "{1}"),  # service numbers (110, 95588, 12345)
)
# A number in the lake's form that is a telephone number (what a call can match).
TELEPHONE = r"^(?:\+[1-9][0-9]{4,14}|[0-9]{3,6})$"
_GROUP = re.compile(r"\{(\d)\}")


def _at_the_very_end(pattern: str, end: str) -> str:
    """A rule's pattern for an engine whose `$` also matches before a final line terminator (Python's
    before `\\n`; Java's before `\\n`, `\\r`, U+0085, U+2028, U+2029): anchored at the very end
    instead (`end`), as Polars' `$` is, so no engine reads a number with a line break after it."""
    return pattern.removesuffix("$") + end


_COMPILED = tuple((re.compile(_at_the_very_end(pattern, r"\Z")), template) for pattern, template in RULES)
_TELEPHONE = re.compile(_at_the_very_end(TELEPHONE, r"\Z"))


def _template(template: str, group: str) -> str:
    """A rule's template in an engine's replacement syntax (`group` formats a group number)."""
    return _GROUP.sub(lambda m: group.format(m.group(1)), template)


def e164(text: str | None) -> str | None:
    """A number as written -> the lake's form (see the module); None when blank, as given when no
    rule reads it. Spaces around it are trimmed, as the Spark expression trims them."""
    if text is None:
        return None
    number = text.strip(" ")
    if not number:
        return None
    for pattern, template in _COMPILED:
        if found := pattern.match(number):
            return _GROUP.sub(lambda m: found.group(int(m.group(1))), template)
    return text


def is_telephone(number: str | None) -> bool:
    """Whether a number in the lake's form is a telephone number (E.164 or a service number)."""
    return number is not None and _TELEPHONE.match(number) is not None


def spark_e164(number):
    """`e164` as a Spark Column expression (no UDF): NULL when blank, as given when no rule reads it."""
    from pyspark.sql import functions as F

    n = F.trim(number)
    expression = F.when(n == "", F.lit(None).cast("string"))
    for pattern, template in RULES:
        pattern = _at_the_very_end(pattern, r"\z")
        expression = expression.when(n.rlike(pattern), F.regexp_replace(n, pattern, _template(template, "${}")))
    return expression.otherwise(number)


def polars_e164(number):
    """`e164` as a Polars expression: NULL when blank, as given when no rule reads it."""
    import polars as pl

    n = number.str.strip_chars(" ")
    expression = pl.when(n == "").then(pl.lit(None, pl.String))
    for pattern, template in RULES:
        expression = expression.when(n.str.contains(pattern)).then(
            n.str.replace(pattern, _template(template, "${{{}}}"))
        )
    return expression.otherwise(number)


def national(number: str | None) -> str:
    """The lake's form -> the form a Chinese analyst dials: `+8613912345678` -> `13912345678`
    (mobile), `+862885551234` -> `02885551234` (landline, trunk prefix 0), `+85512345678` ->
    `0085512345678` (foreign, international prefix 00). Service numbers are returned unchanged,
    None as ''. The inverse of `e164` on the lake's numbers."""
    if not number:
        return ""
    if number.startswith("+86"):
        rest = number[3:]
        return rest if (len(rest) == 11 and rest.startswith("1")) else "0" + rest
    if number.startswith("+"):
        return "00" + number[1:]
    return number


def is_foreign(number: str) -> bool:
    return number.startswith("+") and not number.startswith("+86")
