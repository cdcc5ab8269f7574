"""Test and benchmark helpers: tiny seeded checkpoints in the layouts published on the hub."""
