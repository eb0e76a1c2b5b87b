"""The widgets of the terminal cockpit, one per file."""
