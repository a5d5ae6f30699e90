"""Running a model over a song: the `Separator` contract and result (`separator`), chunked
inference with cross-fades (`chunking`), device choice and OOM handling (`devices`), and the
Demucs and Open-Unmix backends.
"""
