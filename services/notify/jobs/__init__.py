"""Notify's periodic work, each a job on the service's scheduler (shared/periodic.py):
`due` takes the scheduled steps of notifications (send, re-notify, escalate, expire) and
the desk's daily summary; `call_reminders` plans the regional calls' reminders."""
