"""Incident intake: where calls from the control room become incidents."""
