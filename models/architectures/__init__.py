"""Trainable separation networks: the registry of facts about each (`registry`) and one
module per network (`wavenet`, `waveunet`, `convtasnet`, `masknet`).
"""
