from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from chatsite.api.fields import StrictCharField


class RegisterInputSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=128, trim_whitespace=False)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)

    def validate_username(self, value: str) -> str:
        from django.contrib.auth.validators import UnicodeUsernameValidator

        UnicodeUsernameValidator()(value)
        if get_user_model().objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("This username is taken.", code="username_taken")
        return value


class UserOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()  # may be blank: "" is not an email address
    date_joined = serializers.DateTimeField()
