import unittest

from app.reports import get_report


class ReportsTest(unittest.TestCase):
    def test_get_report(self) -> None:
        self.assertEqual(get_report(1)["rows"], 12)
