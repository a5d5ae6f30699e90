"""Everything that talks to the separation engine off the GUI thread: the child-process
protocol (`protocol`), starting a child (`child`), the engine process handle (`process`)
and its entry point (`serve_separation`, also `serve_evaluation`), and the worker tasks
(`workers`).
"""
