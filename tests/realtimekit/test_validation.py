"""RealtimeKit's input rules, checked without a server."""

from typing import Any, Dict

import pytest

from cohrt_sync.server.realtimekit.envelope import RtkError
from cohrt_sync.server.realtimekit.validation import default_ai_config, meeting_fields


def _refusal(body: Dict[str, Any]) -> str:
    with pytest.raises(RtkError) as info:
        meeting_fields(body)
    assert info.value.status == 400
    return info.value.message


def test_ai_config_overlays_the_defaults_field_by_field() -> None:
    fields = meeting_fields({"ai_config": {"transcription": {"language": "de"}}})
    expected = default_ai_config()
    expected["transcription"]["language"] = "de"
    assert fields["ai_config"] == expected


def test_ai_config_checks_sections_then_fields_in_a_fixed_order() -> None:
    bad_both = {"summarization": {"word_limit": 1, "summary_type": "x"}, "transcription": 1}
    assert "summary_type" in _refusal({"ai_config": bad_both})
    assert _refusal({"ai_config": {"transcription": []}}) == (
        '"ai_config.transcription" must be an object'
    )
    assert 'unknown field "x" in "ai_config.summarization"' in _refusal(
        {"ai_config": {"summarization": {"x": 1}}}
    )


@pytest.mark.parametrize("value", [True, 59, 600.5, float("inf"), float("nan"), "60", None])
def test_keep_alive_must_be_a_whole_number_in_range(value: Any) -> None:
    assert _refusal({"session_keep_alive_time_in_secs": value}) == (
        '"session_keep_alive_time_in_secs" must be a whole number of seconds from 60 to 600'
    )


def test_word_limit_range_is_named_in_the_message() -> None:
    body = {"ai_config": {"summarization": {"word_limit": 1001}}}
    assert _refusal(body) == (
        '"ai_config.summarization.word_limit" must be an integer from 150 to 1000'
    )


def test_whole_floats_are_accepted_as_ints() -> None:
    assert meeting_fields({"session_keep_alive_time_in_secs": 600.0}) == {
        "session_keep_alive_time_in_secs": 600
    }
