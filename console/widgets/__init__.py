"""Widgets of the operator console; each renders engine rows and posts messages upward."""
