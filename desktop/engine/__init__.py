"""Everything that talks to the separation engine off the GUI thread: the child process,
its protocol and the worker tasks (`workers`).
"""
