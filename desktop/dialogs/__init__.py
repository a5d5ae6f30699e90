"""Dialog windows: error and question boxes (`messages`), multitrack, training, export and
evaluation dialogs.
"""
