"""Outbound HTTP that cannot be turned against the server's own network (SSRF).

Webhook URLs are user input. A name is resolved and every address checked when the
connection is made, not before, so a DNS answer that changes between the check and the
connect (rebinding) cannot slip through. Only public (global) addresses are allowed unless
LOGDASH_WEBHOOK_ALLOW names the host or a network holding the address.
"""

import ipaddress
import socket

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection


class BlockedAddress(ValueError):
    """The destination is not a public address and the allowlist does not name it."""


class Allowlist:
    """Hosts and networks that may be reached even though they are not public."""

    def __init__(self, setting: str) -> None:
        """Parse a comma-separated list of CIDRs, addresses and host names."""
        self.networks, self.hosts = [], set()
        for item in (part.strip() for part in setting.split(",")):
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.add(item.lower().rstrip("."))

    def permits(self, host: str, address) -> bool:
        """Whether this host at this address may be reached."""
        if host.lower().rstrip(".") in self.hosts:
            return True
        return any(address in network for network in self.networks)


# IPv6 ranges whose last 32 bits are an IPv4 address that a gateway may reach for the
# sender: NAT64's well-known prefix, SIIT's IPv4-translated form and the deprecated
# IPv4-compatible one.
_CARRYING_IPV4 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::ffff:0:0:0/96"),
                  ipaddress.ip_network("::/96"))
# Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the network's prefix
# length, so none of it counts as public.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
# Site-local (deprecated by RFC 3879, yet still routed on some networks), which Python
# counts as global.
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")


def _plain(address):
    """An IPv4-mapped IPv6 address as the IPv4 address it stands for."""
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _carried(address) -> list:
    """The IPv4 addresses an IPv6 address leads to through a translator or tunnel (NAT64,
    6to4, IPv4-compatible): each must be public too. Python counts these ranges as global."""
    if address.version == 4:
        return []
    carried = [address.sixtofour] if address.sixtofour else []
    if any(address in network for network in _CARRYING_IPV4):
        carried.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return carried


def _public(address) -> bool:
    """Whether an address, and whatever IPv4 address it carries, is public unicast."""
    if address.version == 6 and (address in _LOCAL_NAT64 or address in _SITE_LOCAL):
        return False
    return all(ip.is_global and not ip.is_multicast for ip in (address, *_carried(address)))


def check_address(host: str, address: str, allow: Allowlist) -> None:
    """Raise BlockedAddress unless the address is public or allowed."""
    ip = _plain(ipaddress.ip_address(address.split("%")[0]))
    if _public(ip):
        return
    if allow.permits(host, ip):
        return
    raise BlockedAddress(
        f"{host} resolves to {ip}, a private, loopback, link-local or reserved address;"
        " name it in LOGDASH_WEBHOOK_ALLOW to permit it"
    )


def resolve(host: str, port: int) -> list[str]:
    """Every address a host name resolves to."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_url_host(host: str, port: int, allow: Allowlist) -> None:
    """Check what a host resolves to now; a name that does not resolve yet is let through
    here and checked again when a request is made."""
    try:
        addresses = resolve(host, port)
    except OSError:
        return
    for address in addresses:
        check_address(host, address, allow)


class _GuardedConnectionMixin:
    """Resolve, check every address, then connect to a checked one."""

    allowlist: Allowlist = Allowlist("")

    def _new_conn(self):
        """Open the socket only to an address that passed the check."""
        host = self._dns_host
        try:
            addresses = resolve(host, self.port)
        except OSError as error:
            raise NewConnectionError(self, f"cannot resolve {host}: {error}") from error
        for address in addresses:
            check_address(host, address, self.allowlist)
        try:
            return connection.create_connection(
                (addresses[0], self.port), self.timeout,
                source_address=self.source_address, socket_options=self.socket_options,
            )
        except OSError as error:
            raise NewConnectionError(self, f"Failed to establish a new connection: {error}"
                                     ) from error


def guarded_session(allow_setting: str) -> requests.Session:
    """A requests session whose connections refuse non-public addresses, and no proxies."""
    allow = Allowlist(allow_setting)

    class Connection(_GuardedConnectionMixin, HTTPConnection):
        allowlist = allow

    class TLSConnection(_GuardedConnectionMixin, HTTPSConnection):
        allowlist = allow

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = TLSConnection

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            """Use the guarded pools for both schemes."""
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}

    session = requests.Session()
    # Environment proxies would make the proxy, not the target, the checked address.
    session.trust_env = False
    session.mount("http://", Adapter())
    session.mount("https://", Adapter())
    return session
