"""API authentication (kept apart from the views: DRF imports it while loading its settings)."""

from rest_framework import authentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token auth, loading the user's membership and organization in the same query."""

    def authenticate_credentials(self, key):
        try:
            token = Token.objects.select_related("user__membership__organization").get(key=key)
        except Token.DoesNotExist as exc:
            raise AuthenticationFailed("Invalid token.") from exc
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return token.user, token
