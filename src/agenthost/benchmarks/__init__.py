"""The benchmark suite behind ``agenthost bench`` (issue 7).

Workloads B1-B7 measure what serving many users costs: framework overhead per
turn, concurrency, history growth, memory per session, HTTP end to end, a slow
model, and scale-out. ``suite`` defines them and their targets, ``inprocess``,
``memory`` and ``http`` implement them, ``report`` runs them with repetitions
and writes the JSON and Markdown report.
"""
