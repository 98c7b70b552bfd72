"""Log in by name (a user is made on first login), and the chat page."""

import re

from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie

_NAME = re.compile(r"^[A-Za-z0-9 _.-]{1,32}$")


@ensure_csrf_cookie
def login_view(request: HttpRequest) -> HttpResponse:
    """GET: the form; POST: log in as that name."""
    if request.method == "POST":
        name = (request.POST.get("name") or "").strip()
        if not _NAME.match(name):
            return render(request, "project/login.html", {"error": "1 to 32 letters"}, status=400)
        username = re.sub(r"[^a-z0-9]+", "", name.lower()) or "user"
        user, _ = get_user_model().objects.get_or_create(
            username=username, defaults={"first_name": name}
        )
        login(request, user)
        return redirect("chat")
    return render(request, "project/login.html")


def chat(request: HttpRequest) -> HttpResponse:
    """The chat page (the realtime routes answer 401 for anyone not logged in)."""
    if not request.user.is_authenticated:
        return redirect("login")
    return render(request, "project/chat.html", {"room": "room:lobby"})
