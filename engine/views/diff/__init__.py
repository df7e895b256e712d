"""`engine diff A B`: what changed between two specs, and which weights of A load into B.

Both specs are analysed (shapes, no weights); their node trees are matched level by level:
- by name (so by path), as a state_dict would;
- in numbered sequences (`seq:`, repeats), by aligning identical items when that explains more
  than the numbering does (a BatchNorm inserted after every conv renumbers all later items);
- renames: an unmatched node of A and one of B under the same parent with the same op,
  arguments, shapes and contents.

A change is reported at the highest level that explains it: a whole added block is one line,
runs of numbered siblings with the same op are one line (`layer3.6-22: 17 x bottleneck added`),
and a block whose insides changed only because its input shape did is not opened.

The weight-transfer report compares the state_dict keys and shapes of both models, read from
the shape stage's meta modules (nothing is allocated).
"""

from engine.views.diff.format import diff_json, format_diff
from engine.views.diff.match import children, diff_specs
from engine.views.diff.records import (
    ADDED,
    CHANGED,
    REMOVED,
    RENAMED,
    UNCHANGED,
    DiffResult,
    Group,
    NetworkDiff,
    NodeChange,
    WeightTransfer,
)
from engine.views.diff.weights import compare_entries, state_entries

__all__ = [
    "ADDED", "CHANGED", "REMOVED", "RENAMED", "UNCHANGED",
    "DiffResult", "Group", "NetworkDiff", "NodeChange", "WeightTransfer",
    "children", "compare_entries", "diff_json", "diff_specs", "format_diff", "state_entries",
]
