"""Worker tasks of the dialogs that run engine work (`evaluate`).
"""
