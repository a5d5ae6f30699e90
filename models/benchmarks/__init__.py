"""Speed and memory measurements printed as JSON: separation (`separation`), every
architecture side by side (`compare`), resamplers (`resamplers`).
"""
