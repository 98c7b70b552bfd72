"""How the command line reads values: JSON-or-text arguments, base URLs, help with defaults."""

from __future__ import annotations

import argparse
import json
import urllib.parse
from typing import Any, Optional

__all__ = ["VALUE_RULE", "DefaultsFormatter", "base_url_arg", "value_arg"]

#: The rule for ``publish DATA`` and ``sql PARAMS``, as ``--help`` states it.
VALUE_RULE = (
    'JSON where it parses ({"a": 1}, 42, true, null, "quoted"), otherwise the text as given'
    ' (hello → "hello"); text starting with { or [ must be valid JSON'
)

_LOOPBACK = ("localhost", "127.", "[::1]", "::1")


class DefaultsFormatter(argparse.HelpFormatter):
    """argparse's help, plus ``(default: X)`` on every option whose help does not say it.

    ``None`` and ``False`` defaults are left out: "no value" and "off" are
    what an option's absence means anyway.
    """

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or (not action.option_strings and action.nargs not in ("?", "*"))
        ):
            return text
        return f"{text} (default: %(default)s)"


def value_arg(text: str) -> Any:
    """An argument read by :data:`VALUE_RULE`."""
    try:
        return json.loads(text)
    except ValueError as e:
        if text.lstrip()[:1] in ("{", "["):
            raise argparse.ArgumentTypeError(
                f"not valid JSON: {e} (quote the whole argument for the shell, or pass --text)"
            ) from None
        return text


def base_url_arg(text: str) -> str:
    """A base URL: ``http://`` is assumed for a loopback host, any other needs its scheme.

    Assuming plain ``http://`` for a remote host would send the key in clear
    text, so that is refused rather than guessed.
    """
    url = text.strip().rstrip("/")
    if "://" not in url:
        if url.startswith(_LOOPBACK):
            return "http://" + url
        raise argparse.ArgumentTypeError(
            f"{text!r} has no scheme: write https://{url} (or http:// for a local server)"
        )
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http:// or https:// URL (e.g. http://127.0.0.1:8787)"
        )
    return url
