"""The local stack's OIDC issuer: one signing key per state directory, its JWKS and discovery
document served on loopback, and tokens minted from the key for any tenant.

It is how a person on one machine acts as several tenants of the fulfillment service; the
service checks these tokens exactly as it checks a real issuer's (discovery → JWKS → ES256).
"""
