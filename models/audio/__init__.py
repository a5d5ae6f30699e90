"""Audio in and out: reading any format in blocks (`io`), channel layouts (`channels`),
sample-rate conversion (`resample`).
"""
