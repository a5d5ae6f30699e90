"""Scoring separations: BSS Eval and scale-invariant metrics (`metrics`) and the evaluation of
models and oracles over multitrack folders (`evaluate`).
"""
