"""Multitrack song folders: finding songs and mapping their tracks to the six stems
(`folders`), and mixing tracks down to stems and a mix (`mixdown`).
"""
