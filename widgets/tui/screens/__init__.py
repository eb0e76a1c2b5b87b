"""Modal screens of the terminal cockpit: help, quit, resume, learning rate, series."""
