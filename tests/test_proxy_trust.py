"""The reverse-proxy header is believed only from the addresses listed in settings."""

import pytest

from webapp.auth import user_from_proxy
from webapp.errors import Forbidden
from webapp.settings import Settings

PROXIES = Settings(
    auth_mode="proxy",
    proxy_header="X-Remote-User",
    trusted_proxies=("10.0.0.5/32", "192.168.10.0/24", "fd00::/64"),
)


@pytest.mark.parametrize("address", ["10.0.0.5", "192.168.10.77", "fd00::1", "::ffff:10.0.0.5"])
def test_a_listed_proxy_names_the_person(address):
    assert user_from_proxy({"X-Remote-User": "Dana.Scully"}, address, PROXIES) == "dana.scully"


def test_the_header_name_is_matched_without_regard_to_case():
    assert user_from_proxy({"x-remote-user": "dana"}, "10.0.0.5", PROXIES) == "dana"


@pytest.mark.parametrize(
    "address", ["10.0.0.6", "192.168.11.1", "127.0.0.1", "fd01::1", "", None, "not-an-ip"]
)
def test_the_header_from_anywhere_else_is_a_forgery(address):
    with pytest.raises(Forbidden, match="only from the company's sign-in proxy"):
        user_from_proxy({"X-Remote-User": "admin"}, address, PROXIES)


def test_no_header_names_nobody_wherever_the_request_comes_from():
    assert user_from_proxy({"Cookie": "x"}, "10.0.0.5", PROXIES) is None
    assert user_from_proxy({}, "203.0.113.9", PROXIES) is None


def test_another_header_is_not_taken_for_the_configured_one():
    assert user_from_proxy({"X-Forwarded-User": "admin"}, "10.0.0.5", PROXIES) is None


@pytest.mark.parametrize("value", ["", "  ", "two names", "a,b", "x" * 300, "bad\x00name"])
def test_a_header_that_is_not_one_name_is_refused(value):
    with pytest.raises(Forbidden, match="not one name"):
        user_from_proxy({"X-Remote-User": value}, "10.0.0.5", PROXIES)


def test_with_no_proxies_listed_the_header_is_never_believed():
    with pytest.raises(Forbidden):
        user_from_proxy({"X-Forwarded-User": "admin"}, "127.0.0.1", Settings())
