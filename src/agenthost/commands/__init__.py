"""One module per ``agenthost`` subcommand (see ``agenthost.cli``)."""
