"""Policy as code: `pim-bot policy apply FILE [--dry-run] [--prune]` and `pim-bot policy export`.

`file` reads and checks a policy file (YAML with lines: `yaml_lines`, mistakes collected by
`checker`), `plan` and `plan_assignments` diff it against the database, and `apply` runs the
use cases.
"""

from handlers.policy.apply import Change, PolicyPlan, apply_policy, export_policy

__all__ = ["Change", "PolicyPlan", "apply_policy", "export_policy"]
