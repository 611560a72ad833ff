"""Who may reach the app: loopback only, or a login when it is exposed (--host, --share)."""
from __future__ import annotations

import ipaddress
from pathlib import Path

from rag.errors import ConfigError


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(auth: str) -> tuple[str, str]:
    """("user", "pass") from "USER:PASS" or from a file whose first line is USER:PASS.

    Raises ConfigError when neither form is given (the password is never echoed).
    """
    text = auth
    path = Path(auth).expanduser()
    if path.is_file():
        try:
            text = next((ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
                         if ln.strip()), "")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"Cannot read the auth file {path}: {e}") from None
    user, sep, password = text.partition(":")
    if not sep or not user.strip() or not password:
        raise ConfigError("--auth needs USER:PASS, or the path of a file holding USER:PASS.")
    return user.strip(), password


def check_exposure(host: str, auth: str | None, share: bool) -> tuple[str, str] | None:
    """The credentials to require, or None for a loopback-only app.

    Raises ConfigError when the app would be reachable from elsewhere without auth.
    """
    if auth:
        return parse_auth(auth)
    if share:
        raise ConfigError("--share publishes the app on a public link; add --auth USER:PASS "
                          "(or a file holding it) to protect it.")
    if not is_loopback(host):
        raise ConfigError(f"Serving on {host} makes the app reachable from other machines; "
                          "add --auth USER:PASS (or a file holding it), or use --host 127.0.0.1.")
    return None
