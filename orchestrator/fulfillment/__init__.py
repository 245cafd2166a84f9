"""The store lifecycle: the pure state machine, the runner that persists its effects, re-sourcing,
pickup timers, the store queue.
"""
