"""Separation without trained weights: the classic baseline (`classic`), the teaching methods
HPSS, REPET and NMF (`teaching`) and the ideal-mask oracles (`oracles`).
"""
