"""Both providers satisfy the Provider protocol and declare upstream's capabilities."""

from __future__ import annotations

from cloudkit.api.jobs import AAP_CAPABILITIES, EDA_CAPABILITIES
from cloudkit.providers.aap import AapProvider
from cloudkit.providers.base import Provider
from cloudkit.providers.eda import EdaProvider


def test_aap_provider_shape() -> None:
    provider = AapProvider("https://aap.example/api/controller", "t", "prov", "deprov")
    assert isinstance(provider, Provider)
    assert provider.name == "aap"
    assert provider.capabilities == AAP_CAPABILITIES
    caps = provider.capabilities
    assert caps.polls_jobs and caps.cancels_jobs and caps.finds_jobs
    assert caps.block_deletion_on_failure and not caps.deprovision_needs_automation_finalizer


def test_eda_provider_shape() -> None:
    provider = EdaProvider("http://eda/create", "http://eda/delete")
    assert isinstance(provider, Provider)
    assert provider.name == "eda"
    assert provider.capabilities == EDA_CAPABILITIES
    caps = provider.capabilities
    assert not (caps.polls_jobs or caps.cancels_jobs or caps.finds_jobs)
    assert not caps.block_deletion_on_failure and caps.deprovision_needs_automation_finalizer
