"""Test support that ships with the library: the workspace stand-in."""
