"""The fulfillment API's routes: parse, authorize, call the store, answer (no SQL here)."""
