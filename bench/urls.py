"""chatsite's URLs plus the benchmark baseline; selected with DJANGO_ROOT_URLCONF=bench.urls.

Never used in production: the setting defaults to chatsite.urls.
"""

from django.urls import path

from bench.baseline_view import baseline
from chatsite.urls import (
    handler400,
    handler403,
    handler404,
    handler500,
)
from chatsite.urls import (
    urlpatterns as site_urlpatterns,
)

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]

urlpatterns = [path("bench/baseline/", baseline), *site_urlpatterns]
