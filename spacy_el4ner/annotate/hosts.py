"""Where the review server may listen: loopback unless the person asks for more."""
import ipaddress

from ..errors import Errors


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or "localhost")."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> bool:
    """RETURNS whether ``host`` is remote (and allowed). RAISES (ValueError): a non-loopback host
    without ``allow_remote``."""
    if is_loopback(host):
        return False
    if not allow_remote:
        raise ValueError(Errors.E406.format(host=host))
    return True
