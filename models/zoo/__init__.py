"""Where models come from: the catalogue of every named model (`catalog`), checksum-verified
resumable downloads (`download`), and safe checkpoint loading and saving (`checkpoint`).
"""
