"""Access reviews ("Review access"): recurring reviews in which reviewers confirm or remove
who holds privileged roles.

`definitions` (what a review is, when instances start), `schedule` (their timers), `open`
(snapshot and reviewer cards), `cards` (a reviewer's card), `decide` (first decision wins),
`remind`, `apply` (the end: outcomes, removals, summary), `export`, `progress` (chat and
digest lists).
"""
