"""The benchmark suite behind ``agenthost bench`` (issue 7), beside the package, not in it.

Workloads B1-B7 measure what serving many users costs: framework overhead per
turn, concurrency, history growth, memory per session, HTTP end to end, a slow
model, and scale-out. ``suite`` defines them and their targets; ``inprocess``,
``memory`` and ``http`` (with the ``loadgen`` client) implement them; ``report``
runs them with repetitions and writes the JSON and Markdown report where it is
told; ``cli`` is what ``agenthost bench`` calls. Imports run one way, none back:
``cli -> report -> suite -> http, memory -> options -> inprocess``.
"""
