"""The EDA provider: webhooks to an Event-Driven Ansible rulebook, fire and forget.

wire.py holds the pure parts (request building, job ids, the rate limiter), client.py the
aiohttp POST, provider.py the Provider protocol on top.
"""

from cloudkit.providers.eda.provider import EdaProvider

__all__ = ["EdaProvider"]
