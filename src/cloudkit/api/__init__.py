"""The ComputeInstance resource: models, names of labels/annotations/finalizers, CRD generation.

Owns the shape of the data every other part exchanges. Imports nothing from cloudkit.
"""
