"""The Horizon REST client against the stand-in server: tokens, paging, the time filter,
and each failure turned into what the worker acts on."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from devenv.horizon import HorizonStandIn
from producer.horizon_client import HorizonClient, HorizonLoginRejected, HorizonUnavailable
from vcstream.settings.horizon import HorizonSettings, normalise_server_url

FAR_FUTURE = 2**50


@pytest.fixture
def horizon() -> Iterator[HorizonStandIn]:
    server = HorizonStandIn().start()
    yield server
    server.stop()


def settings_for(server: HorizonStandIn, password: str | None = None, **extra: object):
    return HorizonSettings.model_validate(
        {
            "name": "cs01",
            "url": server.url,
            "domain": server.domain,
            "username": server.username,
            "password": password or server.password,
            **extra,
        }
    )


def test_reads_every_page_of_the_window(horizon: HorizonStandIn) -> None:
    made = horizon.emit(25)
    client = HorizonClient(settings_for(horizon, pageSize=10), timeout=5)
    events, complete = client.audit_events(0, FAR_FUTURE)
    assert complete
    assert sorted(e["id"] for e in events) == [e["id"] for e in made]
    assert horizon.requests["GET /rest/external/v1/audit-events"] == 3  # 10 + 10 + 5


def test_time_filter_is_inclusive_at_both_ends(horizon: HorizonStandIn) -> None:
    made = horizon.emit(3)
    client = HorizonClient(settings_for(horizon), timeout=5)
    first, last = made[0]["time"], made[-1]["time"]
    events, _ = client.audit_events(first, last)
    assert {e["id"] for e in events} == {e["id"] for e in made}
    events, _ = client.audit_events(last + 1, FAR_FUTURE)
    assert events == []


def test_expired_access_token_is_refreshed_without_a_new_login(horizon: HorizonStandIn) -> None:
    horizon.emit(1)
    client = HorizonClient(settings_for(horizon), timeout=5)
    client.audit_events(0, FAR_FUTURE)
    horizon.expire_tokens()
    events, _ = client.audit_events(0, FAR_FUTURE)
    assert len(events) == 1
    assert (client.logins, client.refreshes) == (1, 1)
    assert horizon.requests["401"] == 1


def test_refused_refresh_token_leads_to_a_new_login(horizon: HorizonStandIn) -> None:
    horizon.emit(1)
    client = HorizonClient(settings_for(horizon), timeout=5)
    client.audit_events(0, FAR_FUTURE)
    horizon.restart()  # forgets access and refresh tokens
    events, _ = client.audit_events(0, FAR_FUTURE)
    assert len(events) == 1
    assert (client.logins, client.refreshes) == (2, 0)
    assert horizon.requests["POST /rest/refresh"] == 1


def test_wrong_password_is_a_rejected_login(horizon: HorizonStandIn) -> None:
    client = HorizonClient(settings_for(horizon, password="wrong"), timeout=5)
    with pytest.raises(HorizonLoginRejected, match="login refused"):
        client.audit_events(0, FAR_FUTURE)


def test_5xx_is_unavailable(horizon: HorizonStandIn) -> None:
    client = HorizonClient(settings_for(horizon), timeout=5)
    horizon.unavailable = True
    with pytest.raises(HorizonUnavailable, match="503"):
        client.audit_events(0, FAR_FUTURE)


def test_an_answer_slower_than_the_timeout_is_unavailable(horizon: HorizonStandIn) -> None:
    client = HorizonClient(settings_for(horizon), timeout=0.3)
    horizon.stall = 2
    with pytest.raises(HorizonUnavailable, match="unreachable"):
        client.audit_events(0, FAR_FUTURE)


def test_a_stopped_server_is_unavailable(horizon: HorizonStandIn) -> None:
    client = HorizonClient(settings_for(horizon), timeout=5)
    horizon.stop()
    with pytest.raises(HorizonUnavailable, match="unreachable"):
        client.audit_events(0, FAR_FUTURE)


def test_server_url_is_normalised_and_refuses_credentials() -> None:
    assert normalise_server_url("cs01.example.com") == "https://cs01.example.com"
    assert normalise_server_url("https://CS01:8443/rest/") == "https://cs01:8443"
    with pytest.raises(ValueError, match="credentials"):
        normalise_server_url("https://u:p@cs01")


def test_a_window_longer_than_the_page_limit_is_reported_incomplete(
    horizon: HorizonStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("producer.horizon_client.MAX_PAGES", 2)
    horizon.emit(12)
    client = HorizonClient(settings_for(horizon, pageSize=5), timeout=5)
    events, complete = client.audit_events(0, FAR_FUTURE)
    assert (len(events), complete) == (10, False)


@pytest.mark.parametrize(
    ("garbled", "problem"),
    [
        (b"<html>proxy error</html>", "not JSON"),
        ({"events": []}, "not a list"),
        ([{"time": 1}], "without integer id"),
        ([{"id": 1, "time": "yesterday", "type": "X"}], "has no time"),
        ([{"id": 1, "time": 1, "type": None}], "has no type"),
    ],
)
def test_an_answer_that_is_not_the_apis_is_unavailable(
    horizon: HorizonStandIn, garbled: object, problem: str
) -> None:
    horizon.garbled = garbled
    client = HorizonClient(settings_for(horizon), timeout=5)
    with pytest.raises(HorizonUnavailable, match=problem):
        client.audit_events(0, FAR_FUTURE)


def test_tokens_refused_even_after_a_new_login_are_unavailable() -> None:
    server = HorizonStandIn(access_ttl=0).start()  # every access token is born expired
    try:
        client = HorizonClient(settings_for(server), timeout=5)
        with pytest.raises(HorizonUnavailable, match="fresh tokens refused"):
            client.audit_events(0, FAR_FUTURE)
        assert client.logins >= 2 and client.refreshes >= 1
    finally:
        server.stop()


def test_logout_from_a_server_that_stopped_answering_gives_up_and_does_not_raise(
    horizon: HorizonStandIn,
) -> None:
    client = HorizonClient(settings_for(horizon), timeout=120)
    client.login()
    horizon.stall = 30  # longer than logout's own 5s, shorter than the request timeout
    logging_out = threading.Thread(target=client.logout, daemon=True)
    logging_out.start()
    logging_out.join(20)
    assert not logging_out.is_alive(), "logout waited for the full request timeout"
