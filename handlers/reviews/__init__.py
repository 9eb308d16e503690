"""Access reviews ("Review access"): recurring reviews in which reviewers confirm or remove
who holds privileged roles.

`definitions` (what a review is, when instances start), `schedule` (their timer rows),
`timers` (what those timers do), `load` (finding reviews), `open` (snapshot, pairing,
reviewer cards), `cards` (a reviewer's card), `decide` (first decision wins), `remind`,
`apply` (the end: outcomes, removals, summary; the grant hook), `export`, `progress` (chat
and digest lists).
"""
