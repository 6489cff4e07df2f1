"""What the conversations app tells the apps above it (review), without knowing them.

``reply_saved`` is sent once per reply, after its final write: ``message`` is the reply as saved,
``prompt`` the user's message it answered, ``conversation`` its conversation, and ``moderated``
whether the provider refused or stopped it for moderation (any dialect: Spark's 10013, 10014 and
10019, the others' moderation errors and finish reasons). Receivers run in the request that
streamed the reply, just before its last frame; they must be quick and must not raise
(they are sent robustly, and a failure is logged, never shown to the user).
"""

from django.dispatch import Signal

reply_saved = Signal()
