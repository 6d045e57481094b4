"""Screens of the operator console: the main view, review, detail and small dialogs."""
