"""Policy as code: `pim-bot policy apply FILE [--dry-run] [--prune]` and `pim-bot policy export`.

`file` reads and checks a policy file (`limits` first, then YAML with lines: `yaml_lines`,
mistakes collected by `checker`), `plan` and `plan_assignments` diff it against the database,
and `apply` runs the use cases.
"""

from handlers.policy.apply import Change, PolicyPlan, apply_policy, export_policy
from handlers.policy.file import read_policy_file
from handlers.policy.limits import DEFAULT_MAX_BYTES

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Change",
    "PolicyPlan",
    "apply_policy",
    "export_policy",
    "read_policy_file",
]
