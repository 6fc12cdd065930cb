"""Reports served by the API."""

REPORTS = {1: {"title": "Q1 revenue", "rows": 12}, 2: {"title": "Q2 revenue", "rows": 15}}


def get_report(report_id: int) -> dict[str, object]:
    return REPORTS[report_id]
