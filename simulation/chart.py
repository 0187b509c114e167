"""The learning curve of a run as a PNG and a self-contained HTML page (the PNG inlined, with the tables)."""

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here, and none needed
import matplotlib.pyplot as plt


def learning_curve_png(summary: dict) -> bytes:
    weeks = [row["week"] for row in summary["weeks"]]
    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=110)
    axis.plot(weeks, [row["oracle"] for row in summary["weeks"]], "--", color="#2a9d8f", label="oracle (best strategy)")
    axis.plot(weeks, [row["policy"] for row in summary["weeks"]], "o-", color="#e76f51", label="REX's choices")
    axis.plot(weeks, [row["random"] for row in summary["weeks"]], ":", color="#6c757d", label="uniform random")
    axis.plot(
        weeks, [row["replied_rate"] for row in summary["weeks"]], "s", color="#264653", alpha=0.6,
        label="REX's recorded reply rate",
    )  # fmt: skip
    efficacy = summary.get("efficacy") or {}
    if efficacy.get("version"):
        label = f"deployed policy {efficacy['version']} (all leads)"
        axis.axhline(efficacy["policy"], color="#e76f51", alpha=0.4, label=label)
    axis.set_xlabel("simulated week")
    axis.set_ylabel("reply rate per send")
    axis.set_xticks(weeks)
    axis.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    axis.set_ylim(bottom=0)
    axis.set_title(summary["title"], fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(key)))}</td>" for key, _ in columns) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.1%}" if abs(value) <= 1 else f"{value:,.2f}"
    return "" if value is None else str(value)


WEEK_COLUMNS = [
    ("week", "week"), ("sends", "sends"), ("delivered_rate", "delivered"), ("replied_rate", "replied"),
    ("meeting_rate", "meetings"), ("deal_rate", "deals"), ("policy", "REX's choices (expected)"),
    ("random", "random"), ("oracle", "oracle"), ("arms", "A/B arms"),
]  # fmt: skip
VERSION_COLUMNS = [
    ("version", "version"), ("status", "status"), ("role", "role"), ("traffic", "traffic %"),
    ("examples", "trained on"), ("auc", "AUC"), ("sends", "sends"), ("reply_rate", "reply rate"),
    ("true_reply_rate", "true expected reply"), ("of_oracle", "of oracle"),
]  # fmt: skip


def learning_curve_html(summary: dict, png: bytes) -> str:
    image = base64.b64encode(png).decode()
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in summary.get("highlights", []))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(summary["title"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}table{{border-collapse:collapse;
margin:1rem 0}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}}th{{background:#f4f4f4}}</style>
</head><body>
<h1>{html.escape(summary["title"])}</h1>
<img alt="learning curve" src="data:image/png;base64,{image}">
<ul>{lines}</ul>
<h2>Weeks</h2>{_table(summary["weeks"], WEEK_COLUMNS)}
<h2>Policy versions</h2>{_table(summary.get("versions", []), VERSION_COLUMNS)}
</body></html>
"""


def charts_write(summary: dict, directory: Path) -> tuple[Path, Path]:
    """Write learning-curve.png and learning-curve.html under ``directory``; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    png = learning_curve_png(summary)
    png_path, html_path = directory / "learning-curve.png", directory / "learning-curve.html"
    png_path.write_bytes(png)
    html_path.write_text(learning_curve_html(summary, png), encoding="utf-8")
    return png_path, html_path
