import unittest

from client.api import report_url


class ApiTest(unittest.TestCase):
    def test_report_url(self) -> None:
        self.assertEqual(report_url(3), "/reports/3")
