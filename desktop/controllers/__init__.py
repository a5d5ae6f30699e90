"""Controllers: the main window's behaviour, one concern each. `songs` (open, close,
recent files, drag and drop), `separation` (separate, cancel, partial results, restore),
`transport` (play, seek, loop, A/B, the playhead timer), `stems` (selection, mute, solo),
`spectra` (the spectrogram), `export` (export and fine-tune dialogs), `help` (the Help
menu), `reference_lanes` (multitrack songs). The window builds the
widgets and wires them to these; controllers use only the window's public attributes.
"""
