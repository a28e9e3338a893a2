"""Intake side: validate Segment events, apply mappings, hash identifiers, append operations to Redis."""
