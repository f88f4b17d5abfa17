"""runner/egress.py: the allowlist forms of DECISIONS 4 and the address policy. No sockets."""
import ipaddress

import pytest

from runner.policy.egress import Policy, allows_address, normalize_host, parse_rule


def allows(entries, url_host, scheme="https", port=None):
    return Policy(entries).allows_host(url_host, scheme, port)


def test_empty_list_denies_everything():
    assert not allows([], "example.com")
    assert not allows([""], "example.com")


def test_star_allows_every_host_on_http_and_https():
    assert allows(["*"], "example.com")
    assert allows(["*"], "api.anything.org", "http", 8080)
    assert allows(["*"], "203.0.113.9")
    assert not Policy(["*"]).allows("ftp", "example.com", 21)


def test_domain_allows_itself_and_subdomains_not_lookalikes():
    p = ["example.com"]
    assert allows(p, "example.com")
    assert allows(p, "api.example.com")
    assert allows(p, "a.b.example.com")
    assert not allows(p, "badexample.com")
    assert not allows(p, "example.org")
    assert not allows(p, "example.com.evil.net")


def test_wildcard_allows_subdomains_only():
    p = ["*.example.com"]
    assert allows(p, "api.example.com")
    assert allows(p, "x.y.example.com")
    assert not allows(p, "example.com")
    assert not allows(p, "badexample.com")


def test_port_and_scheme_as_written():
    assert allows(["example.com:8443"], "api.example.com", "https", 8443)
    assert not allows(["example.com:8443"], "api.example.com", "https", 443)
    assert allows(["https://example.com"], "example.com", "https")
    assert not allows(["https://example.com"], "example.com", "http")
    assert allows(["http://*:8080"], "anything.net", "http", 8080)
    assert not allows(["http://*:8080"], "anything.net", "https", 8080)
    assert allows(["https://*.example.com:443/ignored/path"], "a.example.com", "https", 443)


def test_default_ports_are_the_schemes():
    p = Policy(["example.com:443"])
    assert p.allows_host("example.com", "https")
    assert not p.allows_host("example.com", "http")


def test_ip_literals_match_only_themselves():
    assert allows(["203.0.113.7"], "203.0.113.7")
    assert not allows(["203.0.113.7"], "203.0.113.8")
    assert not allows(["example.com"], "203.0.113.7")
    assert allows(["[2001:db8::1]:443"], "[2001:db8::1]", "https", 443)
    assert allows(["2001:db8::1"], "2001:DB8:0::1")


def test_host_normalization():
    assert normalize_host("API.Example.COM.") == "api.example.com"
    assert normalize_host("[::1]") == "::1"
    assert normalize_host("bücher.de") == "xn--bcher-kva.de"
    assert allows(["bücher.de"], "www.BÜCHER.de")
    with pytest.raises(ValueError):
        normalize_host("")


@pytest.mark.parametrize("entry", ["ftp://example.com", "exa*mple.com", "*.*.com", "example.com:99999",
                                   "example.com:http", "[::1", "*.203.0.113.7"])
def test_invalid_entries_match_nothing_and_are_reported(entry):
    with pytest.raises(ValueError):
        parse_rule(entry)
    p = Policy([entry, "good.com"])
    assert p.invalid == [entry]
    assert p.allows_host("good.com")


def test_the_allowlist_is_parsed_once_per_worker():
    from runner.settings import RunnerSettings
    from runner.worker.host.call import HostState

    host = HostState(RunnerSettings(egress_allowlist=("a.com",)), api=None)
    assert host.egress.rules == [parse_rule("a.com")]
    assert host.egress is host.egress


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.5.5.5", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "255.255.255.255", "224.0.0.1", "240.0.0.1", "192.0.0.9", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1",  # IPv4-mapped
    "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a9fe:a9fe::1",         # NAT64 and 6to4 embedding private IPv4
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",                            # Teredo
])
def test_non_global_addresses_are_refused(address):
    assert not allows_address(address)
    assert not allows_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address):
    assert allows_address(address)
