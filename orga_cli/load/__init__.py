"""`orga load`: many real calls at once.

``spec`` says what is asked (calls, rate, duration, thresholds), ``worker`` runs many
calls on one event loop in a process of its own (each is `orga call`'s ``Call``, with no
screen), ``runner`` starts the workers (and a sandbox, with --sandbox), follows their
progress, and gathers the figures into a ``LoadResult``: percentiles, failures by cause,
the client's own CPU, the thresholds' verdicts.
"""
