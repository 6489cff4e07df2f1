import os

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application
from django.db import connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

application = get_wsgi_application()

# Refuse to serve with an encryption key that cannot open the stored API keys: a clear start-up
# error instead of failed replies later (docs/deploy.md, "Encryption key").
_errors = [message for message in checks.run_checks(tags=["secrets"]) if message.is_serious()]
connections.close_all()  # nothing of start-up's is kept open for the requests
if _errors:
    raise ImproperlyConfigured("\n".join(str(message) for message in _errors))
