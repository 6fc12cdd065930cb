"""The whole table of socket ops: the task ops of `ops.Ops` and those each op module adds.

The daemon serves this table and the CLI runs it in-process when no daemon is up, so both build it here.
"""

from __future__ import annotations

from cockpit.core import execution_ops, review_ops
from cockpit.core.delegation import ops as delegation_ops
from cockpit.core.merge import ops as merge_ops
from cockpit.core.ops import Ops
from cockpit.core.service import TaskService


def build_ops(service: TaskService) -> Ops:
    ops = Ops(service)
    execution_ops.install_ops(ops)
    merge_ops.install_ops(ops)
    delegation_ops.install_ops(ops)
    review_ops.install_ops(ops)
    return ops
