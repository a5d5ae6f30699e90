"""Training and fine-tuning: the engine (`trainer`), segments mixed on the fly (`dataset`),
losses (`losses`) and data-parallel helpers (`distributed`).
"""
