"""Modal screens of the terminal cockpit: help, quit, the checkpoint picker, a prompt, a confirmation, series."""
