"""The test project's settings: what docs/django.md asks a project to add, and a login.

``COHRT_KEY`` and ``COHRT_BASE_URL`` are not set here: the tests give them
through the environment (the fallback) or ``override_settings``.
"""

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "django-insecure-test-only-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "cohrt_sync.django",
    "project",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get(
            "COHRT_TEST_DJANGO_DB", str(Path(tempfile.gettempdir()) / "cohrt-django-test.sqlite3")
        ),
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
SESSION_COOKIE_SAMESITE = "Lax"
LOGIN_URL = "/login"

# The realtime app: who may use which channel (without it, every channel is refused).
COHRT_AUTHORIZE = "project.realtime.may_use"
