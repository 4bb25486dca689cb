"""Tables: the one output format of the analysis (markdown for READMEs, CSV for tools)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

__all__ = ["Table"]


@dataclass(frozen=True)
class Table:
    """A small rectangular table: column names and rows of plain values.

    ``None`` cells are written as empty (CSV) or an em dash (markdown).
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    title: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "rows", tuple(tuple(r) for r in self.rows))
        for r in self.rows:
            if len(r) != len(self.columns):
                raise ValueError(
                    f"row {r!r} has {len(r)} cells but the table has {len(self.columns)} columns"
                )

    def column(self, name: str) -> list:
        """The values of column ``name``."""
        j = self.columns.index(name)
        return [r[j] for r in self.rows]

    def to_markdown(self, floatfmt: str = ".4g") -> str:
        def cell(x: Any) -> str:
            if x is None:
                return "—"
            if isinstance(x, float):
                return format(x, floatfmt)
            return str(x)

        lines = []
        if self.title:
            lines += [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for r in self.rows:
            writer.writerow(["" if x is None else repr(float(x)) if isinstance(x, float) else x for x in r])
        return buf.getvalue()
