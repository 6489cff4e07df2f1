"""Write .env with freshly generated keys, unless one exists already."""

import base64
import os
import secrets
import sys
from pathlib import Path

path = Path(__file__).resolve().parent.parent / ".env"
if path.exists():
    sys.exit(0)
path.write_text(
    "# Written by `make run`; see .env.example for every setting.\n"
    f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}\n"
    f"JWT_SIGNING_KEY={secrets.token_urlsafe(64)}\n"
    f"ENCRYPTION_KEY={base64.urlsafe_b64encode(os.urandom(32)).decode()}\n"
    "DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost\n"
    "SPARK_API_PASSWORD=\n"
)
path.chmod(0o600)
print(f"wrote {path} with generated keys; put your SPARK_API_PASSWORD in it")
