"""The server's TLS context, from PEM certificate and key files."""

from __future__ import annotations

import ssl
from pathlib import Path

from streamlab.errors import ConfigError

__all__ = ["server_context"]


def server_context(certfile: str | Path, keyfile: str | Path | None = None, *,
                   password: str | None = None, cafile: str | Path | None = None) -> ssl.SSLContext:  # fmt: skip
    """A server-side context with Python's secure defaults (TLS 1.2 or later).

    ``certfile`` is the server's certificate chain (PEM), ``keyfile`` its private key
    (or None if it is in ``certfile``). With ``cafile``, clients must present a
    certificate signed by that CA (Kafka's ``ssl.client.auth=required``).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(certfile), None if keyfile is None else str(keyfile), password)
        if cafile is not None:
            context.load_verify_locations(str(cafile))
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate/key ({certfile}, {keyfile}): {exc}") from None
    return context
