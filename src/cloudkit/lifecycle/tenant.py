"""The tenant namespace an instance's VM lives in, named as upstream names it."""

from __future__ import annotations

import base64

from cloudkit.api import names
from cloudkit.api.config_version import fnv1a_64
from cloudkit.api.models import ComputeInstance, TenantReference

DEFAULT_TENANT = "default"


def tenant_hash(tenant: str) -> str:
    """Lowercase unpadded base32 of the big-endian FNV-1a 64 hash of the tenant name."""
    digest = fnv1a_64(tenant.encode()).to_bytes(8, "big")
    return base64.b32encode(digest).decode().rstrip("=").lower()


def tenant_reference(instance: ComputeInstance, prefix: str = "") -> TenantReference:
    tenant = instance.metadata.annotations.get(names.TENANT_ANNOTATION) or DEFAULT_TENANT
    base = prefix or instance.metadata.namespace or "default"
    return TenantReference(name=tenant, namespace=f"{base}-{tenant_hash(tenant)}")
