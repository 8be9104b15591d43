"""Notify's handlers: what the bot reports (`reports`), the roster's facts and the requests
of other services (`facts`), and the life of a notification that both, and notify's jobs,
change notifications through (`notifications`)."""
