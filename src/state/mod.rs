//! state: owned by its work item.
