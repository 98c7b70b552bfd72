"""The project's URLs: its own pages, and the realtime routes under ``realtime/``."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.chat, name="chat"),
    path("login", views.login_view, name="login"),
    path("realtime/", include("cohrt_sync.django.urls")),
]
