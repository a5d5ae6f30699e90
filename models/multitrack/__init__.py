"""Multitrack song folders: finding songs and mapping their tracks to the six stems
(`folders`, with the song model in `songs` and `.stem.mp4` files in `stem_files`), and
mixing tracks down to stems and a mix (`mixdown`).
"""
