"""Stemwright's headless separation engine (never imports Qt)."""
