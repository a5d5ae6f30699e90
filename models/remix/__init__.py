"""After separation: the live remix of stems with gain, pan, mute and solo (`mixer`), and
writing stems to files atomically (`export`).
"""
