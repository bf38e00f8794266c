"""Test helpers that ship with the package so they can run in a fresh interpreter."""
