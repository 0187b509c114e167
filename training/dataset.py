"""The message writer's fine-tuning set: outcome labels → chat JSONL (seed 002's OutcomeDataFormatter).

**Which rows.** ``outcomes.selectors.training_ready`` (complete, clean, not yet used), then only rows labelled
*positive* whose quality (below) reaches ``min_quality_score``. A supervised fine-tune imitates every assistant
turn it sees, so it is shown only messages that worked; failures teach the local policy model instead (it
reads the labels itself), not the writer.

**Quality score** (0–1, the first row that matches decides; seed 002: deals > meetings > replies):

====  ==========================================================  =====
 #    The outcome shows                                           score
====  ==========================================================  =====
 1    a closed deal                                               1.0
 2    a completed meeting                                         0.85
 3    a booked meeting (also after a no-show)                     0.7
 4    a reply with interest (interest signal or positive          0.5
      sentiment)
 5    any other reply                                             0.25
 6    no signal (and bounces, opt-outs)                           0.0
====  ==========================================================  =====

**One example per row**, in the request shape the deployed writer is asked at inference
(``agents.pipeline.personalizer``), so training and serving agree: the writer's system prompt; the lead context
as JSON (framework, tone, variant, channel, the lead's role, industry, seniority, company size and lost reason,
the sender), redacted by ``outcomes.redaction``; and the answer the writer prompt asks for,
``{"subject": ..., "body": ...}`` (empty subject for SMS), redacted in the same session so the lead's name is
the same placeholder in the question and the answer. No name, email, phone, company or domain reaches the file.

**Memory stays constant**: rows stream from the database (``.values().iterator()``) and every example is written
as soon as it is built; the ids of the rows used go to a side file, read back in chunks to mark them with one
UPDATE per chunk, in one transaction, only once both files are complete. A failed export leaves no file and marks
nothing. The split is by a hash of the outcome id and ``seed``: the same row always lands on the same side.
"""

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, FloatField, Q, Value, When
from django.utils import timezone

from agents.pipeline.personalizer import FRAMEWORK_NAMES, WRITER_PROMPT
from outcomes.models import OutcomeLabel
from outcomes.redaction import Redactor
from outcomes.selectors import training_ready
from training.models import TrainingRun

logger = logging.getLogger("rex.training")

MIN_EXAMPLES = 50
CHUNK_SIZE = 2000
DEFAULT_SEED = "rex-split-1"
MAX_VALIDATION_SHARE = 0.5
OK, NOT_ENOUGH_DATA = "ok", "not_enough_data"
TRAIN_FILE, VALIDATION_FILE, IDS_FILE = "train.jsonl", "validation.jsonl", "outcome_ids.txt"

# (score, what it means, any of these field conditions); the first that matches decides. Read both by the
# database (``quality_expression``) and in Python (``quality_score``), so the two can never disagree.
QUALITY_TABLE = (
    (1.0, "deal closed", ({"deal_closed": True},)),
    (0.85, "meeting completed", ({"meeting_completed": True},)),
    (0.7, "meeting booked", ({"meeting_booked": True},)),
    (
        0.5,
        "interested reply",
        ({"replied": True, "interest_signal": True}, {"replied": True, "sentiment_label": "positive"}),
    ),
    (0.25, "reply", ({"replied": True},)),
)
NO_SIGNAL_SCORE = 0.0

ROW_FIELDS = (
    "id",
    "channel",
    "subject_line",
    "message_body",
    "framework",
    "tone",
    "lead_industry",
    "lead_role",
    "company_size",
    "lead_context__seniority",
    "lead_context__lost_reason",
    "agent_decisions__PersonalizerAgent__variant",
    "mission__params__sender_name",
    "organization__name",
    "lead__first_name",
    "lead__last_name",
    "lead__company",
    "lead__email",
    "lead__phone",
    "lead__website",
    "lead__linkedin_url",
)


@dataclass(frozen=True)
class DatasetResult:
    status: str  # OK or NOT_ENOUGH_DATA
    train_path: Path | None = None
    validation_path: Path | None = None
    train_examples: int = 0
    validation_examples: int = 0
    outcome_count: int = 0  # rows exported (and marked used): train + validation
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


# --- Quality --------------------------------------------------------------------------------------------------


def quality_score(outcome) -> float:
    """The 0–1 quality of an outcome (an OutcomeLabel or a dict of its fields), by ``QUALITY_TABLE``."""
    read = outcome.get if isinstance(outcome, dict) else lambda name: getattr(outcome, name, None)
    for score, _meaning, alternatives in QUALITY_TABLE:
        if any(all(read(name) == value for name, value in fields.items()) for fields in alternatives):
            return score
    return NO_SIGNAL_SCORE


def quality_expression() -> Case:
    """``quality_score`` as a database expression, to filter by quality before a row leaves the database."""
    whens = []
    for score, _meaning, alternatives in QUALITY_TABLE:
        condition = Q()
        for fields in alternatives:
            condition |= Q(**fields)
        whens.append(When(condition, then=Value(score)))
    return Case(*whens, default=Value(NO_SIGNAL_SCORE), output_field=FloatField())


# --- Files ----------------------------------------------------------------------------------------------------


def training_dir() -> Path:
    return Path(settings.TRAINING_DIR)


def run_dir(run: TrainingRun) -> Path:
    return training_dir() / f"run-{run.pk}"


def run_files(run: TrainingRun) -> tuple[Path, Path, Path]:
    """(train, validation, outcome ids) of a run's export; ``run.dataset_path`` names the train file."""
    directory = Path(run.dataset_path).parent if run.dataset_path else run_dir(run)
    return directory / TRAIN_FILE, directory / VALIDATION_FILE, directory / IDS_FILE


def in_validation(outcome_id: int, *, share: float, seed: str) -> bool:
    """A stable coin flip per outcome: sha256 of seed and id, as a fraction of 2**64, below ``share``."""
    digest = hashlib.sha256(f"{seed}:{outcome_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


# --- Examples -------------------------------------------------------------------------------------------------


def _host(url: str) -> str:
    host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
    return host.removeprefix("www.")


def _known_pii(row: dict) -> dict:
    """Every value that would identify the lead or the sending organization, for the redactor."""
    email = row["lead__email"] or ""
    return {
        "first_name": row["lead__first_name"],
        "last_name": row["lead__last_name"],
        "company": row["lead__company"],
        "email": email,
        "phone": row["lead__phone"],
        "company_domain": email.rpartition("@")[2],
        "company_website": _host(row["lead__website"] or ""),
        "linkedin_url": row["lead__linkedin_url"],
        "sender_name": row["mission__params__sender_name"],
        "sender_company": row["organization__name"],
    }


def _writer_context(row: dict) -> dict:
    """The writer's request, in the order of ``personalizer._writer_request`` (so placeholders number alike)."""
    framework = row["framework"]
    return {
        "framework": f"{framework} ({FRAMEWORK_NAMES[framework]})" if framework in FRAMEWORK_NAMES else framework,
        "tone": row["tone"],
        "variant": row["agent_decisions__PersonalizerAgent__variant"] or "",
        "channel": row["channel"],
        "lead": {
            "first_name": row["lead__first_name"],
            "last_name": row["lead__last_name"],
            "company": row["lead__company"],
            "title": row["lead_role"],
            "industry": row["lead_industry"],
            "seniority": row["lead_context__seniority"] or "",
            "company_size": row["company_size"],
            "lost_reason": row["lead_context__lost_reason"] or "",
        },
        "sender_name": row["mission__params__sender_name"] or row["organization__name"],
    }


def training_example(row: dict) -> dict | None:
    """One chat fine-tuning example from a row of ``ROW_FIELDS``; None when the row has no body to imitate."""
    body = (row["message_body"] or "").strip()
    if not body:
        return None
    redactor = Redactor(known={key: value for key, value in _known_pii(row).items() if value})
    user = redactor.text(json.dumps(_writer_context(row), ensure_ascii=False))
    subject = "" if row["channel"] == "sms" else (row["subject_line"] or "").strip()
    answer = {"subject": redactor.text(subject), "body": redactor.text(body)}
    return {
        "messages": [
            {"role": "system", "content": WRITER_PROMPT},
            {"role": "user", "content": user},
            {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)},
        ]
    }


def example_rows(
    *,
    min_quality_score: float = 0.0,
    organization_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[dict]:
    """The positive, training-ready rows at or above the quality bar, streamed in id order."""
    return (
        training_ready(organization_id=organization_id, since=since, until=until)
        .filter(training_label=OutcomeLabel.Label.POSITIVE)
        .alias(quality=quality_expression())
        .filter(quality__gte=min_quality_score)
        .order_by("id")
        .values(*ROW_FIELDS)
        .iterator(chunk_size=CHUNK_SIZE)
    )


# --- Export ---------------------------------------------------------------------------------------------------


@dataclass
class _Counts:
    train: int = 0
    validation: int = 0


def _write(rows: Iterator[dict], directory: Path, *, share: float, seed: str) -> _Counts:
    """Write the three files as ``.part`` and rename them once all are complete."""
    directory.mkdir(parents=True, exist_ok=True)
    names = (TRAIN_FILE, VALIDATION_FILE, IDS_FILE)
    parts = [directory / f"{name}.part" for name in names]
    counts = _Counts()
    with (
        parts[0].open("w", encoding="utf-8") as train,
        parts[1].open("w", encoding="utf-8") as validation,
        parts[2].open("w", encoding="ascii") as ids,
    ):
        for row in rows:
            example = training_example(row)
            if example is None:
                continue
            line = json.dumps(example, ensure_ascii=False) + "\n"
            if in_validation(row["id"], share=share, seed=seed):
                validation.write(line)
                counts.validation += 1
            else:
                train.write(line)
                counts.train += 1
            ids.write(f"{row['id']}\n")
    for part, name in zip(parts, names, strict=True):
        part.replace(directory / name)
    return counts


def read_ids(path: Path) -> Iterator[list[int]]:
    """The outcome ids of an export, CHUNK_SIZE at a time."""
    chunk: list[int] = []
    with path.open(encoding="ascii") as lines:
        for line in lines:
            chunk.append(int(line))
            if len(chunk) == CHUNK_SIZE:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _mark_used(ids_path: Path, at: datetime) -> int:
    marked = 0
    for chunk in read_ids(ids_path):
        marked += OutcomeLabel.objects.filter(id__in=chunk, included_in_training=False).update(
            included_in_training=True, included_in_training_at=at, updated_at=at
        )
    return marked


def dataset_release(*, run: TrainingRun) -> int:
    """Give a run's rows back to the pool (its job failed or was cancelled: they trained nothing)."""
    ids_path = run_files(run)[2]
    if not ids_path.exists():
        return 0
    released = 0
    with transaction.atomic():
        for chunk in read_ids(ids_path):
            released += OutcomeLabel.objects.filter(id__in=chunk, included_in_training=True).update(
                included_in_training=False, included_in_training_at=None, updated_at=timezone.now()
            )
    logger.info("training run %s released %s outcome rows", run.pk, released)
    return released


def _validate(min_quality_score: float, validation_share: float) -> None:
    errors = {}
    if not 0.0 <= min_quality_score <= 1.0:
        errors["min_quality_score"] = "Must be between 0 and 1."
    if not 0.0 <= validation_share <= MAX_VALIDATION_SHARE:
        errors["validation_share"] = f"Must be between 0 and {MAX_VALIDATION_SHARE}."
    if errors:
        raise ValidationError(errors)


def dataset_export(
    *,
    run: TrainingRun,
    min_quality_score: float = 0.0,
    organization_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    validation_share: float = 0.1,
    seed: str = DEFAULT_SEED,
) -> DatasetResult:
    """Export the run's dataset (see the module docstring) and mark the rows used; fewer than MIN_EXAMPLES
    usable rows is a ``not_enough_data`` result (no file kept, nothing marked), not an error."""
    _validate(min_quality_score, validation_share)
    directory = run_dir(run)
    rows = example_rows(min_quality_score=min_quality_score, organization_id=organization_id, since=since, until=until)
    try:
        counts = _write(rows, directory, share=validation_share, seed=seed)
    except BaseException:  # a crash or a time limit mid-export: leave no half-written dataset behind
        shutil.rmtree(directory, ignore_errors=True)
        raise
    total = counts.train + counts.validation
    if total < MIN_EXAMPLES:
        shutil.rmtree(directory, ignore_errors=True)
        reason = f"Only {total} usable examples; at least {MIN_EXAMPLES} are needed."
        logger.info("training run %s: %s", run.pk, reason)
        return DatasetResult(status=NOT_ENOUGH_DATA, outcome_count=total, reason=reason)
    train_path, validation_path, ids_path = (directory / name for name in (TRAIN_FILE, VALIDATION_FILE, IDS_FILE))
    try:
        with transaction.atomic():
            marked = _mark_used(ids_path, timezone.now())
            if marked < total:  # another export took some of these rows between our read and our write
                logger.warning(
                    "training run %s: %s of %s exported rows were already marked", run.pk, total - marked, total
                )
            run.dataset_path = str(train_path)
            run.train_examples, run.validation_examples = counts.train, counts.validation
            run.params = {
                **(run.params or {}),
                "dataset": {
                    "min_quality_score": min_quality_score,
                    "organization_id": organization_id,
                    "since": since.isoformat() if since else None,
                    "until": until.isoformat() if until else None,
                    "validation_share": validation_share,
                    "seed": seed,
                },
            }
            run.save(update_fields=["dataset_path", "train_examples", "validation_examples", "params"])
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    logger.info("training run %s exported %s train + %s validation examples", run.pk, counts.train, counts.validation)
    return DatasetResult(
        status=OK,
        train_path=train_path,
        validation_path=validation_path,
        train_examples=counts.train,
        validation_examples=counts.validation,
        outcome_count=total,
    )
