"""Split report rows into pages."""


def page(rows: list[object], number: int, size: int = 10) -> list[object]:
    """The rows on page `number` (pages count from 1)."""
    start = number * size
    return rows[start:start + size]
