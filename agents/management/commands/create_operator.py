"""create_operator --org NAME --email EMAIL [--staff]: where integrations and scripts start."""

import secrets

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from agents.services import operator_create


class Command(BaseCommand):
    help = "Create the organization if needed and a user in it; print the user's API token."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization name (created if it does not exist).")
        parser.add_argument("--email", required=True, help="The user's email, also their login.")
        parser.add_argument("--staff", action="store_true", help="Let the user sign in to the admin.")
        parser.add_argument("--password", help="Admin password; with --staff and none given, one is generated.")

    def handle(self, *args, org, email, staff, password, **options):
        generated = staff and not password
        if generated:
            password = secrets.token_urlsafe(12)
        try:
            membership, token = operator_create(organization_name=org, email=email, staff=staff, password=password)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        user = membership.user
        self.stdout.write(f"organization: {membership.organization.name} (id {membership.organization_id})")
        self.stdout.write(f"user: {user.get_username()}{' (staff)' if user.is_staff else ''}")
        if generated:
            self.stdout.write(f"password: {password}")
        self.stdout.write(f"token: {token.key}")
