"""The one-machine stack: API server, automation service, EDA, VM simulator, playbooks.

Reached by the rest of cloudkit only over the network (enforced by import-linter), so the
operator talks to it exactly as to a real cluster and a real AAP.
"""
