"""Dispatch: which drone answers which incident, by which route."""
