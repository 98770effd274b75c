"""Test fixtures shared by every tier: stacks started through the product's own start_stack."""
