"""Test doubles and helpers shared by test modules (test modules never import one another)."""
