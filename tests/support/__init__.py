"""Fixture builders shared by tests (no tests here)."""
