"""rich renderables for the views (pure: they are drawn by whichever Console the caller has).

Text from the cluster (messages, names) always goes in as ``Text``, never as markup, so a ``[`` in a
message is shown as it is. Colours come from styles only: a Console that is not a terminal, or runs
with ``NO_COLOR`` set, draws them as plain text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from modeldeploy.cli.verbs.history import HistoryEntry
from modeldeploy.cli.view import Detail, GuardrailView, RevisionView, Summary, age, parse_time

PHASE_STYLE = {
    "Healthy": ("✔", "green"),
    "Progressing": ("◌", "yellow"),
    "Paused": ("॥", "yellow"),
    "RolledBack": ("✖", "red"),
    "Degraded": ("✖", "red"),
    "Pending": ("◌", "dim"),
}
VERDICT_STYLE = {"Successful": "green", "Failed": "red", "Inconclusive": "yellow", "Error": "magenta"}
STEP_MARK = {"done": ("✔", "green"), "current": ("▶", "bold yellow"), "pending": ("○", "dim")}
POD_STYLE = {"Running": "green", "Pending": "yellow", "Terminating": "dim"}


def phase_text(phase: str) -> Text:
    icon, style = PHASE_STYLE.get(phase, ("?", ""))
    return Text(f"{icon} {phase}", style=style)


def number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def list_table(rows: Sequence[Summary], now: datetime, all_namespaces: bool) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    if all_namespaces:
        table.add_column("NAMESPACE")
    for column in ("NAME", "PHASE", "STEP", "WEIGHT", "STABLE", "CANARY", "LAST DECISION", "AGE"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        cells: list[Text | str] = [row.namespace] if all_namespaces else []
        cells += [
            Text(row.name),
            phase_text(row.phase),
            row.step,
            f"{row.weight}%",
            row.stable or "-",
            row.canary or "-",
            Text(row.last_decision or "-"),
            age(parse_time(row.decided_at), now),
        ]
        table.add_row(*cells)
    return table


def _field(grid: Table, label: str, value: Text | str) -> None:
    grid.add_row(Text(f"{label}:", style="bold"), value if isinstance(value, Text) else Text(value))


def header(detail: Detail) -> Table:
    s = detail.summary
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    _field(grid, "Name", s.name)
    _field(grid, "Namespace", s.namespace)
    _field(grid, "Status", phase_text(s.phase))
    if detail.paused_reason:
        _field(grid, "Paused", Text(detail.paused_reason, style="yellow"))
    if detail.abort_reason:
        _field(grid, "Aborted", Text(detail.abort_reason, style="red"))
    _field(grid, "Strategy", "BlueGreen" if detail.strategy == "blueGreen" else "Canary")
    _field(grid, "  Step", s.step)
    _field(grid, "  Weight", f"{s.weight}%")
    _field(
        grid,
        "Stable",
        f"{s.stable or '-'}" + (f" (model {detail.model_version})" if detail.model_version else ""),
    )
    _field(grid, "Canary", s.canary or "-")
    _field(grid, "Ready", detail.ready)
    return grid


def steps_text(detail: Detail) -> Text:
    text = Text()
    for step in detail.steps:
        mark, style = STEP_MARK[step.state]
        text.append(f"  {mark} {step.number}. {step.text}\n", style=style)
    return text


def revisions_tree(detail: Detail, now: datetime) -> Tree:
    tree = Tree(Text(f"⟳ {detail.summary.name}", style="bold"), guide_style="dim")
    for rev in detail.revisions:
        tree.add(revision_label(rev), guide_style="dim").children.extend(
            Tree(
                Text.assemble(
                    "□ ",
                    (pod.name, ""),
                    "  ",
                    (pod.status, POD_STYLE.get(pod.status, "yellow")),
                    f"  ready {pod.ready}  restarts {pod.restarts}  age {age(parse_time(pod.created), now)}",
                )
            )
            for pod in rev.pods
        )
    return tree


def revision_label(rev: RevisionView) -> Text:
    role_style = {"stable": "green", "canary": "yellow", "rolled-back": "red"}.get(rev.role, "dim")
    return Text.assemble(
        ("# revision ", "bold"),
        (rev.revision, "bold"),
        "  ",
        (rev.role, role_style),
        f"  weight {rev.weight}%  pods {rev.replicas}",
    )


def guardrail_table(rows: Sequence[GuardrailView], now: datetime) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("GUARDRAIL", "VALUE", "THRESHOLD", "STABLE", "VERDICT", "AGE"):
        table.add_column(column, no_wrap=True)
    for g in rows:
        table.add_row(
            Text(g.name),
            number(g.value),
            Text(g.threshold),
            number(g.stable_value),
            Text(g.verdict or "not measured", style=VERDICT_STYLE.get(g.verdict or "", "dim")),
            age(parse_time(g.at), now),
        )
    return table


def decision_table(detail: Detail, now: datetime) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("AGE", "DECISION", "MESSAGE"):  # one line each (`why` prints them whole)
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for d in detail.decisions:
        style = "yellow" if d.type == "Warning" else ""
        table.add_row(age(parse_time(d.at), now), Text(d.reason, style=style), Text(d.message))
    return table


def detail_view(detail: Detail, now: datetime) -> RenderableType:
    parts: list[RenderableType] = [header(detail)]
    if detail.steps and detail.strategy == "canary":
        parts += [Text("Steps:", style="bold"), steps_text(detail)]
    parts.append(revisions_tree(detail, now))
    if detail.guardrails:
        parts += [Text(""), guardrail_table(detail.guardrails, now)]
    if detail.decisions:
        parts += [Text(""), decision_table(detail, now)]
    return Group(*parts)


def history_table(entries: Sequence[HistoryEntry], now: datetime) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("REVISION", "OUTCOME", "STARTED", "ENDED", "MESSAGE"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    styles = {
        "Promoted": "green",
        "Deployed": "green",
        "InProgress": "yellow",
        "RolledBack": "red",
        "Aborted": "red",
    }
    for e in entries:
        table.add_row(
            Text(e.revision + (" *" if e.serving else ""), style="bold" if e.serving else ""),
            Text(e.outcome, style=styles.get(e.outcome, "dim")),
            age(parse_time(e.started), now) + (" ago" if e.started else ""),
            age(parse_time(e.ended), now) + (" ago" if e.ended else ""),
            Text(e.message),
        )
    return table
