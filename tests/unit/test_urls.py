"""The outbound URL policy: what check_url lets through, what it refuses, and redact_url."""

from __future__ import annotations

import pytest

from worker.config import UrlPolicy
from worker.errors import UrlRejected
from worker.net.urls import check_url, redact_url

STRICT = UrlPolicy()
LOOPBACK = UrlPolicy(allow_loopback=True)
PRIVATE = UrlPolicy(allow_private=True)
OPEN = UrlPolicy(allow_loopback=True, allow_private=True)
PUBLIC_IP = "93.184.216.34"


class FakeResolver:
    """A resolver answering from ``table``; it records what it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.table.get(host, [])


def must_not_resolve(host: str, port: int) -> list[str]:
    raise AssertionError(f"resolver called for {host}:{port}")


def resolving_to(*addresses: str) -> FakeResolver:
    return FakeResolver({"host.example": list(addresses)})


# --- allowed ------------------------------------------------------------------------------------


def test_public_hostname_is_allowed_with_its_parts() -> None:
    resolve = resolving_to(PUBLIC_IP, "2606:2800:220:1:248:1893:25c8:1946")
    checked = check_url("https://host.example:8443/a/b?x=1#frag", STRICT, resolve)
    assert checked.scheme == "https"
    assert checked.host == "host.example"
    assert checked.port == 8443
    assert checked.target == "/a/b?x=1"
    assert checked.addresses == (PUBLIC_IP, "2606:2800:220:1:248:1893:25c8:1946")
    assert checked.username is None
    assert checked.password is None
    assert resolve.asked == [("host.example", 8443)]


def test_default_ports_and_root_target() -> None:
    assert check_url("http://host.example", STRICT, resolving_to(PUBLIC_IP)).port == 80
    checked = check_url("https://HOST.example", STRICT, resolving_to(PUBLIC_IP))
    assert (checked.port, checked.target, checked.host) == (443, "/", "host.example")


def test_userinfo_is_parsed_and_unquoted() -> None:
    checked = check_url("http://al%40ice:p%3Ass@host.example/", STRICT, resolving_to(PUBLIC_IP))
    assert (checked.username, checked.password) == ("al@ice", "p:ss")


def test_public_ip_literals_need_no_resolution() -> None:
    assert check_url(f"http://{PUBLIC_IP}/", STRICT, must_not_resolve).addresses == (PUBLIC_IP,)
    v6 = check_url("http://[2606:4700:4700::1111]:8080/", STRICT, must_not_resolve)
    assert (v6.host, v6.port, v6.addresses) == (
        "2606:4700:4700::1111",
        8080,
        ("2606:4700:4700::1111",),
    )


def test_non_ascii_path_is_percent_encoded() -> None:
    checked = check_url("http://host.example/caf\u00e9?q=%20x", STRICT, resolving_to(PUBLIC_IP))
    assert checked.target == "/caf%C3%A9?q=%20x"


# --- always forbidden ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("0.1.2.3", "0.0.0.0/8"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("::ffff:169.254.169.254", "metadata"),
        ("2002:a9fe:a9fe::1", "metadata"),  # 6to4 wrapping of 169.254.169.254
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 wrapping of 169.254.169.254
    ],
)
@pytest.mark.parametrize("policy", [STRICT, OPEN], ids=["strict", "open"])
def test_forbidden_whatever_the_policy(address: str, why: str, policy: UrlPolicy) -> None:
    with pytest.raises(UrlRejected, match=why):
        check_url("http://host.example/", policy, resolving_to(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://2852039166/",  # 169.254.169.254 as one integer
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://0251.0376.0251.0376/",
        "http://[fe80::1]/",
        "http://0.0.0.0:8080/",
        "http://[::]/",
    ],
)
def test_forbidden_literals_even_with_everything_allowed(url: str) -> None:
    with pytest.raises(UrlRejected):
        check_url(url, OPEN, must_not_resolve)


def test_metadata_refused_even_with_all_switches_on() -> None:
    with pytest.raises(UrlRejected, match="metadata"):
        check_url("http://169.254.169.254/", OPEN, must_not_resolve)
    with pytest.raises(UrlRejected, match="metadata"):
        check_url("http://[fd00:ec2::254]/", OPEN, must_not_resolve)


# --- loopback and private, by policy ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.255.0.9:8080/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://127.1/",
        "http://127.0.0.1./",
    ],
)
def test_loopback_literals_follow_policy(url: str) -> None:
    with pytest.raises(UrlRejected, match="loopback"):
        check_url(url, STRICT, must_not_resolve)
    with pytest.raises(UrlRejected, match="loopback"):
        check_url(url, PRIVATE, must_not_resolve)
    assert check_url(url, LOOPBACK, must_not_resolve).addresses


def test_integer_host_is_judged_as_the_address_it_means() -> None:
    with pytest.raises(UrlRejected, match=r"127\.0\.0\.1.*loopback"):
        check_url("http://2130706433/", STRICT, must_not_resolve)
    assert check_url("http://2130706433/", LOOPBACK).addresses == ("127.0.0.1",)


def test_hostname_resolving_to_loopback_follows_policy() -> None:
    with pytest.raises(UrlRejected, match="loopback"):
        check_url("http://localhost:8080/", STRICT, FakeResolver({"localhost": ["127.0.0.1"]}))
    checked = check_url("http://localhost:8080/", LOOPBACK, FakeResolver({"localhost": ["::1"]}))
    assert checked.addresses == ("::1",)


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "fc00::1",
        "fd12:3456::1",
        "::ffff:10.0.0.1",
    ],
)
def test_private_follows_policy(address: str) -> None:
    with pytest.raises(UrlRejected, match="private"):
        check_url("http://host.example/", STRICT, resolving_to(address))
    with pytest.raises(UrlRejected, match="private"):
        check_url("http://host.example/", LOOPBACK, resolving_to(address))
    assert check_url("http://host.example/", PRIVATE, resolving_to(address)).addresses


@pytest.mark.parametrize("address", ["192.0.2.1", "198.18.0.1", "2001:db8::1"])
def test_other_non_public_ranges_are_refused(address: str) -> None:
    with pytest.raises(UrlRejected, match="not a public address"):
        check_url("http://host.example/", OPEN, resolving_to(address))


def test_one_bad_address_among_good_ones_refuses_the_url() -> None:
    with pytest.raises(UrlRejected, match=r"169\.254\.169\.254"):
        check_url("http://host.example/", STRICT, resolving_to(PUBLIC_IP, "169.254.169.254"))
    with pytest.raises(UrlRejected, match="loopback"):
        check_url("http://host.example/", PRIVATE, resolving_to("10.0.0.1", "127.0.0.1"))


def test_duplicate_resolved_addresses_are_folded() -> None:
    checked = check_url("http://host.example/", STRICT, resolving_to(PUBLIC_IP, PUBLIC_IP))
    assert checked.addresses == (PUBLIC_IP,)


# --- malformed, unresolvable, wrong scheme ------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://host.example/",
        "ftp://host.example/file",
        "javascript:alert(1)",
        "//host.example/",
        "host.example/path",
    ],
)
def test_bad_schemes_are_refused(url: str) -> None:
    with pytest.raises(UrlRejected, match="scheme"):
        check_url(url, OPEN, resolving_to(PUBLIC_IP))


def test_scheme_must_also_be_in_the_policy() -> None:
    with pytest.raises(UrlRejected, match="scheme 'http'"):
        check_url("http://host.example/", UrlPolicy(schemes=frozenset({"https"})), must_not_resolve)


def test_a_policy_cannot_enable_unknown_schemes() -> None:
    policy = UrlPolicy(schemes=frozenset({"http", "file"}))
    with pytest.raises(UrlRejected, match="scheme 'file'"):
        check_url("file:///etc/passwd", policy, must_not_resolve)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http:///path", "no host"),
        ("http://user@/", "no host"),
        ("http://host.example:0/", "out of range"),
        ("http://host.example:65536/", "not a valid URL"),
        ("http://host.example:http/", "not a valid URL"),
        ("http://[::1/", "not a valid URL"),
        ("http://1.2.3.4.5/", "not a valid IPv4"),
        ("http://host.123/", "not a valid IPv4"),
        ("http://0x/", "not a valid IPv4"),
        ("http://ho st.example/", "whitespace"),
        ("http://host.example/\r\nX-Evil: 1", "control"),
        ("http://evil.example\\@host.example/", "'\\\\'"),
        ("http://host..example/", "not a valid hostname"),
        ("http://host!.example/", "not a valid hostname"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://" + "a" * 9000 + "/", "longer than"),
    ],
)
def test_malformed_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(UrlRejected, match=why):
        check_url(url, OPEN, resolving_to(PUBLIC_IP))


def test_host_resolving_to_nothing_is_refused() -> None:
    with pytest.raises(UrlRejected, match="no address"):
        check_url("http://nowhere.example/", STRICT, FakeResolver({}))


def test_resolver_failure_is_a_refusal() -> None:
    def broken(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    with pytest.raises(UrlRejected, match="does not resolve"):
        check_url("http://nowhere.example/", STRICT, broken)


def test_resolver_returning_garbage_is_refused() -> None:
    with pytest.raises(UrlRejected, match="not an address"):
        check_url("http://host.example/", STRICT, resolving_to("not-an-ip"))


def test_rejection_message_never_contains_the_password() -> None:
    with pytest.raises(UrlRejected) as caught:
        check_url("http://bob:hunter2@127.0.0.1/?token=abc", STRICT, must_not_resolve)
    assert "hunter2" not in str(caught.value)
    assert "abc" not in str(caught.value)
    with pytest.raises(UrlRejected) as caught:
        check_url("http://bob:hunter2@[::1/", STRICT, must_not_resolve)
    assert "hunter2" not in str(caught.value)


# --- s3 -----------------------------------------------------------------------------------------


def test_s3_url_has_bucket_and_key_and_no_addresses() -> None:
    checked = check_url("s3://fleetlab-inputs/jobs/42/input.bin", STRICT, must_not_resolve)
    assert (checked.scheme, checked.host, checked.port) == ("s3", "fleetlab-inputs", 0)
    assert checked.target == "/jobs/42/input.bin"
    assert checked.addresses == ()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("s3://fleetlab-inputs", "need a key"),
        ("s3://fleetlab-inputs/", "need a key"),
        ("s3:///key", "bucket"),
        ("s3://Bad_Bucket/key", "bucket"),
        ("s3://ab/key", "bucket"),
        ("s3://user:pw@bucket/key", "credentials"),
        ("s3://bucket:9000/key", "port"),
        ("s3://bucket/key?versionId=1", "query"),
    ],
)
def test_bad_s3_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(UrlRejected, match=why):
        check_url(url, STRICT, must_not_resolve)


def test_s3_refused_when_policy_leaves_it_out() -> None:
    with pytest.raises(UrlRejected, match="scheme 's3'"):
        check_url("s3://bucket/key", UrlPolicy(schemes=frozenset({"https"})), must_not_resolve)


# --- redact_url ---------------------------------------------------------------------------------


def test_redact_removes_userinfo() -> None:
    assert redact_url("https://bob:hunter2@host.example:8443/p?a=1") == (
        "https://host.example:8443/p?a=1"
    )
    assert redact_url("http://justatoken@host.example/") == "http://host.example/"


def test_redact_replaces_secret_query_values() -> None:
    url = (
        "https://host.example/in?name=x&password=hunter2&pass=p1&token=t1&access_token=t2"
        "&client_secret=s1&signature=s2&api_key=k1&X-Amz-Signature=abc&X-Amz-Credential=AKIA"
        "&page=2"
    )
    redacted = redact_url(url)
    for secret in ("hunter2", "p1", "t1", "t2", "s1", "s2", "k1", "abc", "AKIA"):
        assert f"={secret}" not in redacted
    assert "name=x" in redacted
    assert "page=2" in redacted
    assert "password=REDACTED" in redacted
    assert "X-Amz-Signature=REDACTED" in redacted


def test_redact_drops_fragment_and_keeps_plain_urls() -> None:
    assert redact_url("http://host.example/a#access_token=xyz") == "http://host.example/a"
    assert redact_url("s3://bucket/key") == "s3://bucket/key"
    assert redact_url("http://host.example/?flag") == "http://host.example/?flag"


def test_redact_never_echoes_an_unparsable_url() -> None:
    assert "hunter2" not in redact_url("http://bob:hunter2@[::1/")
