"""HNS4D: humanitarian notifications to the parties to a conflict (sites and movements), each party's
acknowledgement of receipt tracked with a deadline, silence escalated, incidents and evidence kept.

An acknowledgement is receipt only: never approval, clearance or a guarantee of safety."""
