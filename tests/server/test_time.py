"""The server's ISO-8601 times: Cloudflare's shape, truncated to milliseconds."""

from cohrt_sync.server._time import iso_utc


def test_shape_is_utc_with_milliseconds_and_z() -> None:
    assert iso_utc(1_735_689_600) == "2025-01-01T00:00:00.000Z"
    assert iso_utc(1_735_689_600.352) == "2025-01-01T00:00:00.352Z"


def test_fraction_is_truncated_never_rounded_up() -> None:
    assert iso_utc(1.9996) == "1970-01-01T00:00:01.999Z"
