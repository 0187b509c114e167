"""Classify the sentiment of recorded replies, with progress: history, or everything again after the analyzer
changed (``--all``). Uses the LLM when OPENAI_API_KEY is set, the rules otherwise."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from agents.models import Organization
from outcomes.replies_batch import replies_classify_batch, replies_to_classify


class Command(BaseCommand):
    help = "Classify the sentiment of recorded replies (by default only those without a sentiment yet)."

    def add_arguments(self, parser):
        parser.add_argument("--organization", type=int, help="Only this organization's replies (its id).")
        parser.add_argument(
            "--all", dest="reclassify", action="store_true", help="Re-classify replies that already have a sentiment."
        )
        parser.add_argument("--batch-size", type=int, default=200, help="Rows per query (default 200).")

    def handle(self, *args, organization=None, reclassify=False, batch_size=200, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if organization is not None and not Organization.objects.filter(pk=organization).exists():
            raise CommandError(f"No organization with id {organization}.")
        total = replies_to_classify(organization_id=organization, only_unclassified=not reclassify).count()
        engine = f"model {settings.OPENAI_MODEL}" if settings.OPENAI_API_KEY else "rules (OPENAI_API_KEY is not set)"
        self.stdout.write(f"{total} replies to classify with {engine}.")
        done = replies_classify_batch(
            organization_id=organization,
            only_unclassified=not reclassify,
            batch_size=batch_size,
            progress=lambda count: self.stdout.write(f"  {count}/{total}"),
        )
        self.stdout.write(self.style.SUCCESS(f"Classified {done} replies."))
