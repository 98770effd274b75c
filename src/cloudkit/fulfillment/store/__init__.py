"""The fulfillment store: the only code that speaks SQL (SQLite embedded, PostgreSQL in production).

One interface (base.Store), one implementation per database, versioned migrations beside them.
"""
