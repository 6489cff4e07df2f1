from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.db import IntegrityError, transaction

from .models import User


class UsernameTaken(Exception):
    pass


def user_create(*, username: str, password: str, email: str = "") -> User:
    """Create a user after Django's password validators (raises ``ValidationError``)."""
    user_model = get_user_model()
    candidate = user_model(username=username, email=email)
    validate_password(password, user=candidate)
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError as exc:
        raise UsernameTaken(username) from exc
    return candidate
