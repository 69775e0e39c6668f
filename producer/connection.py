"""A logged-in pyvmomi session to one vCenter, and what its failures mean.

Failures fall in two groups: the configuration is wrong (bad credentials, a certificate
that does not verify) and retrying cannot help; or the vCenter is away for now
(connection refused or dropped, session expired, vCenter restarted) and the worker
reconnects with backoff.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pyVim.connect
from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from schemas.vsphere import VCenterIdentity
from vcstream.proxy import proxy_for
from vcstream.settings.vcenter import VCenterSettings

log = logging.getLogger(__name__)

# pyVmomi's stubs leave its generated types and connect helpers untyped
vim: Any = _vim
vmodl: Any = _vmodl
SmartConnect: Any = pyVim.connect.SmartConnect
Disconnect: Any = pyVim.connect.Disconnect


class ConfigurationProblem(Exception):
    """Retrying cannot help: wrong credentials or an untrusted certificate."""


class VCenterUnavailable(Exception):
    """The vCenter cannot be reached or dropped the session; reconnecting may help."""


def classify(exc: BaseException, vcenter: VCenterSettings) -> Exception:
    """Turn whatever pyvmomi or the socket raised into one of the two kinds above.

    Messages name the vCenter and the problem, never the password.
    """
    where = f"vCenter {vcenter.name} ({vcenter.url})"
    if isinstance(exc, vim.fault.InvalidLogin):
        return ConfigurationProblem(f"{where}: login failed for user {vcenter.username!r}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConfigurationProblem(
            f"{where}: TLS certificate not trusted ({exc.verify_message}); "
            "set caFile to its CA bundle, or insecure: true"
        )
    if isinstance(exc, vim.fault.NotAuthenticated):
        return VCenterUnavailable(f"{where}: session is no longer authenticated")
    if isinstance(exc, OSError | http.client.HTTPException | socket.timeout):
        return VCenterUnavailable(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, vmodl.fault.SystemError | vmodl.fault.HostCommunication):
        return VCenterUnavailable(f"{where}: {type(exc).__name__}")
    if isinstance(exc, vmodl.MethodFault):
        return VCenterUnavailable(f"{where}: {type(exc).__name__}: {exc.msg}")
    return VCenterUnavailable(f"{where}: {type(exc).__name__}: {exc}")


def ssl_context_for(vcenter: VCenterSettings) -> ssl.SSLContext | None:
    if urlsplit(vcenter.url).scheme != "https":
        return None
    if vcenter.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = str(vcenter.ca_file) if vcenter.ca_file else None
    return ssl.create_default_context(cafile=cafile)


@dataclass
class Session:
    """One login; `service_instance` is only used from the thread that made it."""

    vcenter: VCenterSettings
    service_instance: Any
    identity: VCenterIdentity
    # fetched once per login: `service_instance.content` is a property that costs a
    # whole SOAP round trip on every access (it was half the producer's CPU)
    content: Any

    def close(self) -> None:
        try:
            Disconnect(self.service_instance)
        except Exception as exc:  # a dead connection cannot log out; nothing is lost
            log.debug("logout from %s failed: %s", self.vcenter.name, exc)


def connect(vcenter: VCenterSettings, request_timeout: float) -> Session:
    """Log in; raises ConfigurationProblem or VCenterUnavailable."""
    parts = urlsplit(vcenter.url)
    scheme = parts.scheme
    port = parts.port or (443 if scheme == "https" else 80)
    # pyVmomi tunnels through the proxy with CONNECT (https) or sends it absolute URLs
    proxy = proxy_for(vcenter.url, vcenter.proxy)
    try:
        service_instance = SmartConnect(
            protocol=scheme,
            host=parts.hostname,
            port=port,
            path=parts.path or "/sdk",
            user=vcenter.username,
            pwd=vcenter.password.get_secret_value(),
            sslContext=ssl_context_for(vcenter),
            httpConnectionTimeout=request_timeout,
            httpProxyHost=proxy.host if proxy else None,
            httpProxyPort=proxy.port if proxy else 80,
        )
        content = service_instance.RetrieveContent()
        about = content.about
    except Exception as exc:
        raise classify(exc, vcenter) from None
    identity = VCenterIdentity(
        instance_uuid=str(about.instanceUuid),
        source=vcenter.url,
        api_version=str(about.apiVersion),
        name=vcenter.name,
    )
    return Session(vcenter, service_instance, identity, content)
