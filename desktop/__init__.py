"""Stemwright desktop application (PySide6 + pyqtgraph)."""
