"""Client addresses as arrival limits see them (issue 29).

An IPv4 address is one address; an IPv6 address is grouped by its /64 (one household or one machine gets a
whole /64, so per-address limits per IPv6 address would be no limit at all). Researchers running a lab
behind one address list its networks in ``LAB_NETWORKS`` (CIDR, space or comma separated): addresses in them
get ``LAB_PLACES_PER_ADDRESS`` concurrently held places and ``LAB_ARRIVAL_RATE_PER_IP`` arrivals instead of
the defaults (``PLACES_PER_ADDRESS``, ``ARRIVAL_RATE_PER_IP``).
"""

from __future__ import annotations

import ipaddress
from typing import Any

DEFAULT_PLACES_PER_ADDRESS = 5
DEFAULT_LAB_PLACES_PER_ADDRESS = 100


def address_net(address: str | None) -> str:
    """``"203.0.113.7"``, ``"2001:db8:1:2::/64"``, or the text itself when it is not an IP address."""
    text = (address or "").strip()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text[:64] or "?"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def lab_networks(config: Any) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``LAB_NETWORKS`` parsed; a malformed entry is an error naming it."""
    text = str(config.get("LAB_NETWORKS") or "")
    out = []
    for part in text.replace(",", " ").split():
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"LAB_NETWORKS: {part!r} is not a network (write e.g. 192.0.2.0/24 or "
                             "2001:db8::/48)") from None
    return out


def in_lab(config: Any, address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    return any(ip in net for net in lab_networks(config))


def places_per_address(config: Any, address: str | None) -> int | None:
    """The cap on places held at once by one address (group) in one study; None: no cap (also when
    ``RATE_LIMIT_ENABLED`` is off, as in the testing config, like the arrival limits)."""
    if not config.get("RATE_LIMIT_ENABLED", True):
        return None
    name, default = (("LAB_PLACES_PER_ADDRESS", DEFAULT_LAB_PLACES_PER_ADDRESS) if in_lab(config, address)
                     else ("PLACES_PER_ADDRESS", DEFAULT_PLACES_PER_ADDRESS))
    value = int(config.get(name, default) or 0)
    return value if value > 0 else None
