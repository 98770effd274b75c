"""The AAP-direct provider: AWX/AAP controller job templates launched and polled over REST.

wire.py is the pure request/response model, client.py the aiohttp transport, provider.py the
Provider protocol on top.
"""

from cloudkit.providers.aap.client import AapClient
from cloudkit.providers.aap.provider import AapProvider

__all__ = ["AapClient", "AapProvider"]
