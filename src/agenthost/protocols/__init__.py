"""Mappings between the ecosystem's protocols and the Host, free of HTTP.

- :mod:`agenthost.protocols.openai_chat`: OpenAI Chat Completions requests,
  responses and stream chunks; reconciling a client's conversation with the
  stored session history.
- :mod:`agenthost.protocols.a2a_mapping`: Agent2Agent (A2A) tasks, messages
  and agent cards built from run records and stored messages (a2a-sdk types).

The routers in :mod:`agenthost.server` stay thin by calling these.
"""
