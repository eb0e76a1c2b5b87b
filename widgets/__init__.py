"""Cockpit views (terminal UI, notebook widgets). Imported only on demand."""
