"""Cockpit hooks."""
