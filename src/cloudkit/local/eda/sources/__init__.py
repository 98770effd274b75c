"""Event source plugins for ansible-rulebook (`-S` points here)."""
