"""What commands print: a rich table at a terminal; a plain table with every cell whole when the
output goes to a log or another program; one JSON document with ``--json``.

Every layer's commands print through here, so that ``tapweight run ... > log`` shows whole names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table as RichTable

# soft_wrap: a line in a log is never broken at 80 columns or cut.
console = Console(soft_wrap=True)

JsonOption = Annotated[
    bool, typer.Option("--json", help="print one JSON document instead of tables, for programs")
]


@dataclass
class Table:
    """Rows of raw values (what ``--json`` prints); ``formats`` give a column's display, as
    ``{"weight": ".4f"}``. None shows as "-", booleans as yes/no."""

    columns: Sequence[str]
    title: str = ""
    formats: Mapping[str, str] = field(default_factory=dict)
    rows: list[Sequence[Any]] = field(default_factory=list)

    def add_row(self, *values: Any) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"a row of {len(values)} values for {len(self.columns)} columns")
        self.rows.append(values)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def cells(self) -> list[list[str]]:
        specs = [self.formats.get(column, "") for column in self.columns]
        return [
            [_show(value, spec) for value, spec in zip(row, specs, strict=True)]
            for row in self.rows
        ]


def _show(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, spec).replace("\n", " ")


def plain(table: Table) -> str:
    """Columns padded to their widest cell, so nothing is cut at any width."""
    rows = [list(table.columns), *table.cells()]
    widths = [max(cell_len(row[i]) for row in rows) for i in range(len(table.columns))]
    rows.insert(1, ["-" * width for width in widths])
    lines = [table.title] if table.title else []
    for row in rows:
        padded = (
            cell + " " * (width - cell_len(cell)) for cell, width in zip(row, widths, strict=True)
        )
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def emit(
    *tables: Table, notes: Sequence[str] = (), data: Any = None, as_json: bool = False
) -> None:
    """Print the tables, then the notes (rich markup allowed). With ``as_json`` print only
    ``data`` as JSON, by default the tables' rows as records.

    Example:
        ``emit(table, notes=[f"wrote {path}"], data=result.model_dump(mode="json"), as_json=j)``
    """
    if as_json:
        if data is None:
            data = (
                tables[0].records()
                if len(tables) == 1
                else [{"title": table.title, "rows": table.records()} for table in tables]
            )
        print(json.dumps(data, indent=2, default=str))
        return
    for table in tables:
        if console.is_terminal:
            shown = RichTable(*table.columns, title=table.title or None)
            for row in table.cells():
                shown.add_row(*row)
            console.print(shown)
        else:
            console.print(plain(table), markup=False, highlight=False)
    for note in notes:
        console.print(note)
