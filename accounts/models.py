from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """The project's user, custom from the first migration so fields can be added later."""

    class Meta(AbstractUser.Meta):  # type: ignore[name-defined]  # django-stubs lacks Meta
        swappable = "AUTH_USER_MODEL"
