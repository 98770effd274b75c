"""The fulfillment service: the tenant's half of cloudkit (orders through an authenticated API).

Owns the wire objects tenants exchange (models), the records behind them (store: the only place
SQL lives), who may do what (caller, auth), the HTTP routes (server) and the event stream.
A product package: it never imports cloudkit.local (the local stack is reached over the network).
"""
