"""`stemwright synth`: composed songs with their true stems. Composition (`composer`, with
`theory`, `styles`, `song`, `parts` and `melody`), rendering through FluidSynth and
espeak-ng (`render`), writing multitrack folders (`generate`), and the small deterministic
songs tests and benchmarks use (`test_songs`).
"""
