"""The tenant's commands: `cloudkit login`, `token`, and create / get / describe / delete of
compute instances through the fulfillment API (the `osac` CLI's habits, kubectl's exit codes)."""
