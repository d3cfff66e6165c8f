//! apply: owned by its work item.
