"""A tiny client of the backend API."""


def report_url(report_id: int) -> str:
    return f"/reports/{report_id}"
