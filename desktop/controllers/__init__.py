"""Controllers that connect the engine's results to the views: reference lanes and
multitrack songs (`reference_lanes`).
"""
