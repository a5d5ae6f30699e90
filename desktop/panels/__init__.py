"""Docked panels of the main window: separation settings (`separation`), the mixer (`mixer`).
"""
