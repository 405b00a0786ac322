"""``schema.*``: unreadable files, contract columns missing, extra or under an alias, and
header changes from one file to the next."""

from __future__ import annotations

from puffy.dq.checks.context import CheckContext
from puffy.dq.checks.grading import fixed, fmt_dates
from puffy.findings import Finding
from puffy.ingest import RawFile


def _canonical(ctx: CheckContext, name: str) -> str:
    key = name.strip().lower()
    canon = {c.lower(): c for c in ctx.rules.contract.columns}
    aliases = {k.lower(): v for k, v in ctx.rules.contract.aliases.items()}
    return canon.get(key) or aliases.get(key) or name.strip()


def check_schema(ctx: CheckContext) -> list[Finding]:
    rules = ctx.rules.schema_rules
    files = ctx.range_files
    readable = [f for f in files if not f.header_error]
    out = [
        fixed(
            ctx,
            "schema.unreadable_file",
            "Unreadable raw file",
            "unreadable_files",
            rules.unreadable_file,
            [f.file_date.isoformat() for f in files if f.header_error],
            sum(1 for f in files if f.header_error),
            "Could not read " + ", ".join(f"{f.name} ({f.header_error})" for f in files if f.header_error),
            "Every raw file can be read, header and body.",
        )
    ]
    for fid, title, attr, severity, verb in (
        ("schema.column_missing", "Contract column missing", "missing", rules.missing_column, "is missing from"),
        (
            "schema.column_extra",
            "Column not in the contract",
            "extra",
            rules.extra_column,
            "is not in the contract but appears in",
        ),
    ):
        hit = [f for f in readable if getattr(f, attr)]
        cols = sorted({c for f in hit for c in getattr(f, attr)})
        parts = [f"column {c} {verb} {_files_phrase([f for f in hit if c in getattr(f, attr)])}" for c in cols]
        out.append(
            fixed(
                ctx,
                fid,
                title,
                f"files_with_{attr}_columns",
                severity,
                [f.file_date.isoformat() for f in hit],
                len(hit),
                _sentence_case("; ".join(parts)),
                f"No file has {'a missing' if attr == 'missing' else 'an extra'} column.",
            )
        )
    hit = [f for f in readable if f.renamed]
    pairs = sorted({p for f in hit for p in f.renamed})
    out.append(
        fixed(
            ctx,
            "schema.column_renamed",
            "Column under another name (alias)",
            "files_with_renamed_columns",
            rules.renamed_column,
            [f.file_date.isoformat() for f in hit],
            len(hit),
            "; ".join(
                f"Header {a} is read as {b} in {_files_phrase([f for f in hit if (a, b) in f.renamed])} "
                f"(the data dictionary does not mention {a})"
                for a, b in pairs
            ),
            "Every header uses the contract's column names.",
        )
    )
    out.extend(_day_over_day(ctx))
    return out


def _files_phrase(files: list[RawFile]) -> str:
    dates = [f.file_date.isoformat() for f in files]
    return f"{len(files)} file{'s' if len(files) != 1 else ''} ({fmt_dates(dates)})"


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _day_over_day(ctx: CheckContext) -> list[Finding]:
    """Header vs the previous readable file: renamed (same canonical column), dropped, added."""
    severity = ctx.rules.schema_rules.changed_vs_previous_day
    changes: dict[str, list[tuple[str, str]]] = {"renamed": [], "dropped": [], "added": []}
    readable = [f for f in ctx.files if not f.header_error]
    for prev, cur in zip(readable, readable[1:]):
        if cur.file_date not in set(ctx.days):
            continue
        before = {h.strip() for h in prev.header}
        after = {h.strip() for h in cur.header}
        gone, new = before - after, after - before
        renamed = {(g, n) for g in gone for n in new if _canonical(ctx, g) == _canonical(ctx, n)}
        day = cur.file_date.isoformat()
        changes["renamed"] += [(day, f"{g} → {n}") for g, n in sorted(renamed)]
        changes["dropped"] += [(day, g) for g in sorted(gone - {g for g, _ in renamed})]
        changes["added"] += [(day, n) for n in sorted(new - {n for _, n in renamed})]
    titles = {
        "renamed": "Column renamed since the previous day",
        "dropped": "Column dropped since the previous day",
        "added": "Column added since the previous day",
    }
    out = []
    for kind, items in changes.items():
        text = "; ".join(f"{what} on {day}" for day, what in items)
        out.append(
            fixed(
                ctx,
                f"schema.day_over_day_{kind}",
                titles[kind],
                f"columns_{kind}",
                severity,
                [d for d, _ in items],
                len(items),
                f"Header changed vs the previous file: column {kind} {text}",
                f"No column was {kind} from one file to the next.",
            )
        )
    return out
