"""The scripts the seeded tasks run (script-agent TOML), in creation order: backend#1 .. backend#5."""

from __future__ import annotations

import textwrap
from typing import Any

from cockpit.demo.workspace import PYTHON

# -- the scripts the seeded tasks run ------------------------------------------------------------------------

def script(*steps: dict[str, Any], fix: list[dict[str, Any]] | None = None) -> str:
    """A script-agent TOML from step tables (each a one-key dict)."""
    import tomlkit

    doc = tomlkit.document()
    arr = tomlkit.aot()
    for step in steps:
        arr.append(tomlkit.item(step))
    doc["step"] = arr
    if fix:
        fix_arr = tomlkit.aot()
        for step in fix:
            fix_arr.append(tomlkit.item(step))
        doc["fix"] = fix_arr
    return tomlkit.dumps(doc)


def _write(path: str, content: str) -> dict[str, Any]:
    return {"write": {"path": path, "content": textwrap.dedent(content)}}


def _run_tests(module: str) -> dict[str, Any]:
    return {"run": f"{PYTHON} -m unittest -q {module}"}


EXPORT_SCRIPT = script(
    {"say": "Adding the /export endpoint; cockpit hands the export page to frontend (plan step 3)"},
    _write("app/export.py", '''\
        """GET /export: a report as CSV rows."""

        from app.reports import get_report


        def export(report_id: int) -> list[list[str]]:
            report = get_report(report_id)
            return [["title", "rows"], [str(report["title"]), str(report["rows"])]]
        '''),
    _write("tests/test_export.py", '''\
        import unittest

        from app.export import export


        class ExportTest(unittest.TestCase):
            def test_export_has_a_header_row(self) -> None:
                self.assertEqual(export(1)[0], ["title", "rows"])
        '''),
    _run_tests("tests.test_export"),
    {"commit": "Add the /export endpoint"},
)

RATE_LIMIT_SCRIPT = script(
    {"say": "Adding rate limiting to the export endpoint"},
    _write("app/ratelimit.py", '''\
        """A fixed-window rate limit for the export endpoint."""

        import time


        class RateLimit:
            def __init__(self, per_minute: int = 30) -> None:
                self.per_minute = per_minute
                self.window = int(time.time() // 60)
                self.used: dict[str, int] = {}

            def allow(self, key: str) -> bool:
                window = int(time.time() // 60)
                if window != self.window:
                    self.window, self.used = window, {}
                self.used[key] = self.used.get(key, 0) + 1
                return self.used[key] <= self.per_minute
        '''),
    {"ask": "Limit per API key rather than per user? (y/n)"},
    _write("tests/test_ratelimit.py", '''\
        import unittest

        from app.ratelimit import RateLimit


        class RateLimitTest(unittest.TestCase):
            def test_the_limit_holds(self) -> None:
                limit = RateLimit(per_minute=2)
                self.assertEqual([limit.allow("key") for _ in range(3)], [True, True, False])
        '''),
    _run_tests("tests.test_ratelimit"),
    {"commit": "Rate-limit the export endpoint per API key"},
)

CSV_SCRIPT = script(
    {"say": "Adding CSV output to report downloads"},
    _write("app/csv_output.py", '''\
        """Reports as CSV text."""

        import csv
        import io


        def to_csv(rows: list[list[str]]) -> str:
            out = io.StringIO()
            csv.writer(out, lineterminator="\\n").writerows(rows)
            return out.getvalue()
        '''),
    _write("tests/test_csv_output.py", '''\
        import unittest

        from app.csv_output import to_csv


        class CsvTest(unittest.TestCase):
            def test_quotes_commas(self) -> None:
                self.assertEqual(to_csv([["a,b", "c"]]), '"a,b",c\\n')
        '''),
    _run_tests("tests.test_csv_output"),
    {"commit": "Add CSV output to report downloads"},
)

PAGINATION_SCRIPT = script(
    {"say": "Page 1 skipped the first ten rows: pages count from 1"},
    _write("app/pagination.py", '''\
        """Split report rows into pages."""


        def page(rows: list[object], number: int, size: int = 10) -> list[object]:
            """The rows on page `number` (pages count from 1)."""
            start = (number - 1) * size
            return rows[start:start + size]
        '''),
    _write("tests/test_pagination.py", '''\
        import unittest

        from app.pagination import page


        class PaginationTest(unittest.TestCase):
            def test_first_page_starts_at_the_first_row(self) -> None:
                self.assertEqual(page(list(range(25)), 1), list(range(10)))

            def test_last_page_is_short(self) -> None:
                self.assertEqual(page(list(range(25)), 3), [20, 21, 22, 23, 24])
        '''),
    _run_tests("tests.test_pagination"),
    {"commit": "Fix the off-by-one in report pagination"},
)

CURRENCY_SCRIPT = script(
    {"say": "Adding currency formatting to report totals"},
    _write("app/currency.py", '''\
        """Money amounts for people."""


        def format_total(cents: int) -> str:
            return f"${cents / 100}"
        '''),
    _write("tests/test_currency.py", '''\
        import unittest

        from app.currency import format_total


        class CurrencyTest(unittest.TestCase):
            def test_thousands_and_cents(self) -> None:
                self.assertEqual(format_total(123450), "$1,234.50")
        '''),
    {"commit": "Format report totals as currency"},
    fix=[
        {"say": "The gate says the cents are missing: format with two decimals"},
        _write("app/currency.py", '''\
            """Money amounts for people."""


            def format_total(cents: int) -> str:
                return f"${cents / 100:.2f}"
            '''),
        {"commit": "Show cents in report totals"},
    ],
)

DELEGATING_TEXT = "Add an /export endpoint and have frontend redesign the export page"

# (role, description, script), in creation order: backend#1 .. backend#5.
SEEDED: tuple[tuple[str, str, str], ...] = (
    ("delegating", DELEGATING_TEXT, EXPORT_SCRIPT),
    ("asking", "Add rate limiting to the export endpoint", RATE_LIMIT_SCRIPT),
    ("review", "Add CSV output to report downloads", CSV_SCRIPT),
    ("merged", "Fix the off-by-one error in report pagination", PAGINATION_SCRIPT),
    ("failed", "Add currency formatting to report totals", CURRENCY_SCRIPT),
)
